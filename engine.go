package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Engine is the node's Socket.IO server, for both protocol generations on
// the same path, chosen by the handshake's EIO query value: 3 (Engine.IO v3 +
// Socket.IO 4, socket.io-client 2.x) and 4 (Engine.IO v4 + Socket.IO 5,
// socket.io-client 3.x and 4.x). Besides the default namespace "/", a
// session may connect to the namespaces its host serves
// (engine_namespace.go), and events may carry binary attachments
// (engine_binary.go).
//
// A session (engine_session.go) is one Engine.IO connection, created by the
// handshake with the Socket that modules see of it (socket.go), and gone
// when its transport closes, its client stays silent past the ping
// timeout, the server disconnects it, or the node shuts down. Its transport is polling or
// a websocket; a polling session may upgrade to a websocket once.
//
// Goroutines, per session, and who ends each:
//   - websocket: one reader (started by the upgrade request, which then
//     returns), holding no buffer while idle. It reads one packet at a time,
//     hands each event to a worker and waits for it, and pauses while its
//     client has more than readPauseBytes queued, so a node that is behind
//     reads more slowly instead of queueing without bound. It ends when the
//     connection fails or Socket.close closes it. A writer runs only while
//     frames are queued: it writes everything queued in one syscall, repeats
//     until the queue is empty, then returns; a write that blocks past the
//     write deadline closes the session.
//   - polling: none of its own. A GET parks its HTTP handler goroutine until
//     frames are queued, the session ends, or the long-poll bound passes; a
//     POST hands its packets' events to workers, in order, on its handler
//     goroutine.
//   - each event's handler runs on one of the engine's workers while its
//     reader (or POST) waits for it (Engine.call): readers stay shallow while
//     idle, and the calls in flight on the node are bounded by the number of
//     workers (maxCalls). Workers start on demand and end at Engine.stop,
//     which the host calls after every reader has returned.
//   - every session has one runtime timer (no goroutine while waiting): it
//     sends v4 pings and closes a session whose client went silent, or
//     that stayed in no namespace for the connect timeout.
//
// The host (the Server) is told of each socket on connect, of its events and
// of its end; readers and writers run on the host's wait group, so shutdown
// waits for them.
type Engine struct {
	opts     engineOptions
	host     engineHost
	log      *slog.Logger
	upgrader websocket.Upgrader
	spawn    func(func()) // runs a goroutine the host waits for

	jobs     chan job      // handler calls for idle workers (call)
	quit     chan struct{} // closed by stop
	quitOnce sync.Once
	nworkers atomic.Int32   // workers started
	workers  sync.WaitGroup // running workers
	queued   atomic.Int64   // bytes in every session's outbound queue

	mu       sync.Mutex // guards the following fields
	sessions map[string]*session
	perIP    map[string]int // live sessions by client IP
	draining bool
}

// engineOptions are the Engine's settings, filled in by the Server.
type engineOptions struct {
	pingInterval, pingTimeout time.Duration
	maxMessage                int // bytes of one message; polling bodies may hold twice that
	maxQueueBytes             int // bytes queued for one client before it counts as not reading
	maxPerIP                  int // live sessions per client IP; 0: no cap
	// slowAfter overrides the slowAfter constant (tests); 0: slowAfter.
	slowAfter time.Duration
	// homeBucket is the routing bucket of this node's sockets' own rooms,
	// carried in their session ids (newSessionID).
	homeBucket int
	// shedBytes is the bytes queued over all sessions beyond which the
	// node is backlogged (see backlogged); 0: shedQueuedBytes.
	shedBytes int64
	// connectTimeout bounds how long a session may be in no namespace ("/"
	// included): after its handshake, or after it left the last one; 0:
	// pingTimeout.
	connectTimeout time.Duration
	// echo is for the Engine.IO protocol test suite only (conformance_test.go):
	// each message packet goes back to its sender as it came instead of being
	// read as Socket.IO, and a session needs no Socket.IO connect to stay.
	echo bool
	// rootArgs is for the Socket.IO protocol test suite only
	// (conformance_test.go): every event of "/" goes to the host's
	// nspEvent, with all its arguments.
	rootArgs bool
}

// shedQueuedBytes is when a node counts as backlogged: its sockets' queues
// hold this much together. At the tens of megabytes a second a busy node
// sends, it is a fraction of a second of output.
const shedQueuedBytes = 8 << 20

// backlogged reports whether the sessions' outbound queues hold more than
// the node's bound: its clients are not taking their events as fast as they
// come, and what would produce more should wait.
func (e *Engine) backlogged() bool {
	limit := e.opts.shedBytes
	if limit <= 0 {
		limit = shedQueuedBytes
	}
	return e.queued.Load() > limit
}

func (o *engineOptions) connectTimeoutOr() time.Duration {
	if o.connectTimeout > 0 {
		return o.connectTimeout
	}
	return o.pingTimeout
}

func (o *engineOptions) slowAfterOr() time.Duration {
	if o.slowAfter > 0 {
		return o.slowAfter
	}
	return slowAfter
}

// engineHost is what the engine tells the node above it. Each call runs on
// the session's reader (or polling request) goroutine; none may block for
// long.
type engineHost interface {
	// originAllowed reports whether a browser page from origin may connect.
	originAllowed(origin string) bool
	// admit decides on a handshake (no session yet); status 0 admits it.
	admit(r *http.Request, proto int) (status int, msg string)
	// authorize decides on the connection of s's default namespace. auth is
	// the v4 CONNECT packet's auth object (nil for v3 or when absent). A
	// non-nil error refuses it; its text goes to the client.
	authorize(s *Socket, auth json.RawMessage) error
	// connect is told of a connected socket, after its client has been
	// sent the connect packet.
	connect(s *Socket)
	// event handles one client event and returns the acknowledgement's
	// argument (a JSON value) when ack is true.
	event(s *Socket, name string, payload json.RawMessage, ack bool) json.RawMessage
	// disconnect is called once for every socket that was connected.
	disconnect(s *Socket, reason string)
	// gone is called once for every session that ends, connected or not,
	// after disconnect.
	gone(s *Socket)
	// slow is told of a socket about to be dropped for not reading.
	slow(s *Socket)

	// nspAuthorize decides on the connection of s to namespace nsp (not
	// "/"); auth is as for authorize. errUnknownNamespace refuses a
	// namespace nobody serves; the text of any error goes to the client.
	nspAuthorize(s *Socket, nsp string, auth json.RawMessage) error
	// nspConnect is told that s connected to nsp, after its client was
	// sent the connect packet.
	nspConnect(s *Socket, nsp string)
	// nspEvent handles an event of a namespace other than "/" (and, for the
	// Socket.IO test suite, every event of "/"), and returns the acknowledgement's arguments (JSON text
	// of the array's elements, and attachments) when ev.ack is true.
	nspEvent(s *Socket, ev *nspEvent) (ack []byte, att [][]byte)
	// nspDisconnect is called once for every namespace s connected to,
	// when it leaves it or is gone.
	nspDisconnect(s *Socket, nsp, reason string)
}

// Engine timing that does not come from the settings.
const (
	// writeWait bounds one flush to a websocket: a client that does not read
	// for that long is disconnected.
	writeWait = 10 * time.Second
	// upgradeWait bounds a polling session's upgrade probe.
	upgradeWait = 10 * time.Second
)

func newEngine(opts engineOptions, host engineHost, log *slog.Logger, spawn func(func())) *Engine {
	return &Engine{
		opts: opts, host: host, log: log, spawn: spawn,
		upgrader: websocket.Upgrader{
			ReadBufferSize: 512,
			// gorilla does the opening handshake only: frames are read and
			// written by the engine on the raw connection (engine_websocket.go),
			// and gorilla's Conn, buffers and all, is dropped after Upgrade.
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true }, // checked before
		},
		jobs:     make(chan job),
		quit:     make(chan struct{}),
		sessions: make(map[string]*session),
		perIP:    make(map[string]int),
	}
}

// maxCalls bounds the handler calls in flight on a node. Past it, readers
// wait for a worker and so read no more: a node that is behind slows its
// clients down (TCP backpressure) instead of queueing work without bound.
const maxCalls = 256

// call runs f, a handler call, on one of the engine's workers and waits for
// it. The caller (a session's reader or polling request) thereby keeps a
// shallow stack while idle, a session's events are still handled one at a
// time and in order, and the workers keep their grown stacks from call to
// call. Workers are started on demand, up to maxCalls, and stopped by stop.
func (e *Engine) call(f func()) {
	done := make(chan struct{})
	j := job{f: f, done: done}
	select {
	case e.jobs <- j: // an idle worker took it
	case <-e.quit: // stopped: the node is shutting down
		f()
		return
	default:
		if e.nworkers.Add(1) <= maxCalls {
			e.workers.Add(1)
			go e.work(j) // owned by the engine: ends at stop
		} else {
			e.nworkers.Add(-1)
			select {
			case e.jobs <- j:
			case <-e.quit:
				f()
				return
			}
		}
	}
	<-done
}

// job is one handler call for a worker.
type job struct {
	f    func()
	done chan struct{}
}

// work runs first, then every job it is handed, until stop.
func (e *Engine) work(first job) {
	defer e.workers.Done()
	first.f()
	close(first.done)
	for {
		select {
		case j := <-e.jobs:
			j.f()
			close(j.done)
		case <-e.quit:
			return
		}
	}
}

// stop ends the workers and waits for them. Calls after it run on their
// caller's goroutine. The server stops the engine after every session's
// reader has returned.
func (e *Engine) stop() {
	e.quitOnce.Do(func() { close(e.quit) })
	e.workers.Wait()
}

// Engine.IO HTTP error codes, as engine.io answers them.
const (
	eioErrTransport = 0 // unknown transport
	eioErrSession   = 1 // unknown session id
	eioErrBadReq    = 3 // bad request
	eioErrForbidden = 4
	eioErrVersion   = 5 // unsupported protocol version
)

// ServeHTTP serves /socket.io/: handshakes, polling requests and websocket
// upgrades of both protocol versions.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	proto := 0
	switch q.Get("EIO") {
	case "3":
		proto = 3
	case "4":
		proto = 4
	default:
		engineError(w, http.StatusBadRequest, eioErrVersion, "Unsupported protocol version")
		return
	}
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" || q.Has("j") {
		engineError(w, http.StatusBadRequest, eioErrTransport, "Transport unknown")
		return
	}
	if !e.originOK(w, r) {
		return
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		if r.Method != http.MethodGet {
			engineError(w, http.StatusBadRequest, eioErrBadReq, "Bad handshake method")
			return
		}
		if status, msg := e.host.admit(r, proto); status != 0 {
			engineError(w, status, eioErrForbidden, msg)
			return
		}
		e.handshake(w, r, proto, transport)
		return
	}
	s := e.session(sid)
	if s == nil || s.proto != proto {
		engineError(w, http.StatusBadRequest, eioErrSession, "Session ID unknown")
		return
	}
	if transport == "websocket" {
		e.serveUpgrade(w, r, s)
		return
	}
	switch r.Method {
	case http.MethodGet:
		e.servePoll(w, r, s)
	case http.MethodPost:
		e.servePost(w, r, s)
	default:
		engineError(w, http.StatusBadRequest, eioErrBadReq, "Bad request")
	}
}

// originOK sets the CORS headers for an allowed origin, or answers 403.
func (e *Engine) originOK(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if !e.host.originAllowed(origin) {
		engineError(w, http.StatusForbidden, eioErrForbidden, "origin not allowed")
		return false
	}
	if origin != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "content-type")
		}
	}
	return true
}

// engineError answers an HTTP error as engine.io does: {"code":n,"message":...}.
func engineError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(canonicalJSON(map[string]any{"code": code, "message": msg}))
}

// handshake opens a session over the requested transport.
func (e *Engine) handshake(w http.ResponseWriter, r *http.Request, proto int, transport string) {
	s, ok := e.newSocket(r, proto)
	if !ok {
		engineError(w, http.StatusTooManyRequests, eioErrForbidden, "too many connections from this address")
		return
	}
	upgrades := `["websocket"]`
	if transport == "websocket" {
		upgrades = `[]`
	}
	open := []byte(`0{"sid":"` + s.id + `","upgrades":` + upgrades +
		`,"pingInterval":` + strconv.FormatInt(e.opts.pingInterval.Milliseconds(), 10) +
		`,"pingTimeout":` + strconv.FormatInt(e.opts.pingTimeout.Milliseconds(), 10))
	if proto == 4 {
		open = strconv.AppendInt(append(open, `,"maxPayload":`...), int64(2*e.opts.maxMessage), 10)
	}
	open = append(open, '}')
	if transport == "websocket" {
		e.openWebsocket(w, r, s, open)
		return
	}
	if proto == 3 && !e.connectV3(s) {
		engineError(w, http.StatusForbidden, eioErrForbidden, "refused")
		return
	}
	s.startTimer()
	e.respondPoll(w, r, s, open)
}

// newSocket registers a new session for request r, within the per-IP cap.
func (e *Engine) newSocket(r *http.Request, proto int) (*session, bool) {
	ip := hostOf(r.RemoteAddr)
	s := &session{eng: e, id: newSessionID(e.opts.homeBucket), proto: proto, ip: ip, token: r.URL.Query().Get("token"),
		created: time.Now(), done: make(chan struct{}), greeted: e.opts.echo}
	s.sock = newModuleSocket(s, r)
	s.lastSeen, s.lastTake, s.bare = s.created, s.created, s.created
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining || e.opts.maxPerIP > 0 && e.perIP[ip] >= e.opts.maxPerIP {
		return nil, false
	}
	e.sessions[s.id] = s
	e.perIP[ip]++
	return s, true
}

// session returns the live session sid, or nil.
func (e *Engine) session(sid string) *session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions[sid]
}

// forget removes a closed session from the tables.
func (e *Engine) forget(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sessions[s.id] != s {
		return
	}
	delete(e.sessions, s.id)
	if e.perIP[s.ip]--; e.perIP[s.ip] <= 0 {
		delete(e.perIP, s.ip)
	}
}

// drain refuses new handshakes from now on and returns the live sessions.
func (e *Engine) drain() []*session {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.draining = true
	return e.socketsLocked()
}

// Sockets returns the node's live sockets.
func (e *Engine) Sockets() []*Socket {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Socket, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, s.sock)
	}
	return out
}

func (e *Engine) socketsLocked() []*session {
	out := make([]*session, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, s)
	}
	return out
}

// Len returns the number of live sessions.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

// Socket returns the live socket with id sid, or nil.
func (e *Engine) Socket(sid string) *Socket {
	if s := e.session(sid); s != nil {
		return s.sock
	}
	return nil
}
