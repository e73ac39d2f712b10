package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitTimeout bounds every wait in the tests.
const waitTimeout = 5 * time.Second

// protocols are the Engine.IO versions the client speaks.
var protocols = []int{3, 4}

// eachProtocol runs f as one subtest per protocol version.
func eachProtocol(t *testing.T, f func(t *testing.T, proto int)) {
	t.Helper()
	for _, proto := range protocols {
		t.Run(fmt.Sprintf("EIO=%d", proto), func(t *testing.T) { f(t, proto) })
	}
}

// handler answers one event: the ack's single argument, or ok false for no
// acknowledgement.
type handler func(s *testSocket, args []json.RawMessage) (reply json.RawMessage, ok bool)

// serverConfig configures a testServer; the zero value is ready to use.
type serverConfig struct {
	// pingInterval and pingTimeout are announced in the open packet; zero
	// means 25 s and 20 s.
	pingInterval, pingTimeout time.Duration
	// auth, when set, decides whether a socket may connect, from the
	// token query parameter and the protocol 5 CONNECT auth object (nil in
	// protocol 3). A refusal is HTTP 401 in protocol 3 and
	// 44{"message":"unauthorized"} in protocol 4, as the rtm server does.
	auth func(token string, auth json.RawMessage) bool
	// handlers are added to the default ones (echo, whoami).
	handlers map[string]handler
}

// testServer is a minimal Socket.IO server over websocket for the client's
// own tests, speaking Engine.IO 3 and 4 (chosen by the EIO query value) with
// each version's liveness rule: in version 3 the client pings and a socket
// without a ping for pingInterval+pingTimeout is dropped; in version 4 the
// server pings every pingInterval and drops a socket whose pong does not
// come within pingTimeout. Every connection has one reader goroutine (the
// HTTP handler) and, in version 4, one pinger.
type testServer struct {
	url          string
	cfg          serverConfig
	handlers     map[string]handler
	gone         chan disconnect // one per ended socket
	pings, pongs atomic.Int64    // received from clients
	nextID       atomic.Int64

	mu    sync.Mutex // guards the following fields
	conns map[string]*testSocket
}

// testSocket is the server side of one connected socket.
type testSocket struct {
	id    string
	proto int
	ws    *websocket.Conn
	wmu   sync.Mutex // guards writes to ws
}

// disconnect records why a socket ended.
type disconnect struct {
	id, reason string
}

// Reasons a testServer records for an ended socket.
const (
	reasonClient    = "client namespace disconnect" // 41, or an Engine.IO close
	reasonTransport = "transport close"             // read error
	reasonPing      = "ping timeout"
	reasonParse     = "parse error"
	reasonServer    = "server namespace disconnect"
)

// startServer starts a testServer on a loopback port; it stops when the test
// ends.
func startServer(t *testing.T, cfg serverConfig) *testServer {
	t.Helper()
	if cfg.pingInterval == 0 {
		cfg.pingInterval = 25 * time.Second
	}
	if cfg.pingTimeout == 0 {
		cfg.pingTimeout = 20 * time.Second
	}
	ts := &testServer{cfg: cfg, gone: make(chan disconnect, 64), conns: map[string]*testSocket{},
		handlers: map[string]handler{
			"echo": func(_ *testSocket, args []json.RawMessage) (json.RawMessage, bool) {
				if len(args) == 0 {
					return json.RawMessage("null"), true
				}
				return args[0], true
			},
			"whoami": func(s *testSocket, _ []json.RawMessage) (json.RawMessage, bool) {
				b, _ := json.Marshal(s.id)
				return b, true
			},
		}}
	for name, h := range cfg.handlers {
		ts.handlers[name] = h
	}
	hs := httptest.NewServer(http.HandlerFunc(ts.serve))
	ts.url = hs.URL
	t.Cleanup(func() {
		ts.mu.Lock()
		for _, s := range ts.conns {
			s.ws.Close()
		}
		ts.mu.Unlock()
		hs.Close()
	})
	return ts
}

// serve runs one connection from handshake to end.
func (ts *testServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	proto := map[string]int{"3": 3, "4": 4}[q.Get("EIO")]
	if proto == 0 || q.Get("transport") != "websocket" {
		http.Error(w, "unsupported protocol version or transport", http.StatusBadRequest)
		return
	}
	if proto == 3 && ts.cfg.auth != nil && !ts.cfg.auth(q.Get("token"), nil) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	s := &testSocket{id: fmt.Sprintf("eio-%d", ts.nextID.Add(1)), proto: proto, ws: ws}
	open := fmt.Sprintf(`0{"sid":%q,"upgrades":[],"pingInterval":%d,"pingTimeout":%d`,
		s.id, ts.cfg.pingInterval.Milliseconds(), ts.cfg.pingTimeout.Milliseconds())
	if proto == 4 {
		open += `,"maxPayload":1000000`
	}
	if s.write(open+"}") != nil {
		return
	}
	defer func() {
		ts.mu.Lock()
		delete(ts.conns, s.id)
		ts.mu.Unlock()
	}()
	if !ts.connect(s, q.Get("token")) {
		// Refused: the client ends the connection.
		_, _, _ = ws.ReadMessage()
		return
	}
	ts.gone <- disconnect{s.id, ts.readLoop(s)}
}

// connect connects the root namespace: at once in protocol 3, on the
// client's CONNECT packet in protocol 4, whose auth object it checks. It
// reports whether the socket is connected; a connected socket is known to
// conn before the client learns it is connected.
func (ts *testServer) connect(s *testSocket, token string) bool {
	if s.proto == 3 {
		ts.register(s)
		return s.write("40") == nil
	}
	_ = s.ws.SetReadDeadline(time.Now().Add(waitTimeout))
	_, msg, err := s.ws.ReadMessage()
	if err != nil || len(msg) < 2 || string(msg[:2]) != "40" {
		return false
	}
	if ts.cfg.auth != nil && !ts.cfg.auth(token, json.RawMessage(msg[2:])) {
		_ = s.write(`44{"message":"unauthorized"}`)
		return false
	}
	// The socket's id differs from the Engine.IO session's, as in socket.io 4.
	s.id = fmt.Sprintf("sio-%d", ts.nextID.Add(1))
	ts.register(s)
	return s.write(fmt.Sprintf(`40{"sid":%q}`, s.id)) == nil
}

// register records a connected socket for conn.
func (ts *testServer) register(s *testSocket) {
	ts.mu.Lock()
	ts.conns[s.id] = s
	ts.mu.Unlock()
}

// readLoop reads the socket's frames until it ends and returns why.
func (ts *testServer) readLoop(s *testSocket) string {
	dead := ts.cfg.pingInterval + ts.cfg.pingTimeout
	pong := make(chan struct{}, 1)
	if s.proto == 4 {
		stop := make(chan struct{})
		defer close(stop)
		go ts.pinger(s, pong, stop)
	}
	_ = s.ws.SetReadDeadline(time.Now().Add(dead))
	for {
		_, msg, err := s.ws.ReadMessage()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return reasonPing
		case err != nil:
			return reasonTransport
		case len(msg) == 0:
			return reasonParse
		}
		switch msg[0] {
		case eioPing:
			ts.pings.Add(1)
			if s.proto == 3 {
				_ = s.ws.SetReadDeadline(time.Now().Add(dead))
				_ = s.write("3" + string(msg[1:]))
			}
		case eioPong:
			ts.pongs.Add(1)
			if s.proto == 4 {
				_ = s.ws.SetReadDeadline(time.Time{}) // the pinger sets the next one
				select {
				case pong <- struct{}{}:
				default:
				}
			}
		case eioClose:
			return reasonClient
		case eioMessage:
			if reason := ts.handlePacket(s, msg[1:]); reason != "" {
				return reason
			}
		default:
			return reasonParse
		}
	}
}

// pinger pings s pingInterval after its last pong (or the connect) and gives
// it pingTimeout to answer, as Engine.IO 4 servers do, until stop is closed.
func (ts *testServer) pinger(s *testSocket, pong <-chan struct{}, stop <-chan struct{}) {
	t := time.NewTimer(ts.cfg.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		_ = s.ws.SetReadDeadline(time.Now().Add(ts.cfg.pingTimeout))
		if s.write("2") != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-pong:
		}
		t.Reset(ts.cfg.pingInterval)
	}
}

// handlePacket handles one Socket.IO packet; a non-empty result ends the
// socket for that reason.
func (ts *testServer) handlePacket(s *testSocket, b []byte) string {
	p, err := parseSIO(b)
	if err != nil || !p.isRoot() {
		return reasonParse
	}
	switch p.typ {
	case sioDisconnect:
		return reasonClient
	case sioEvent:
		name, args, err := parseEvent(p.data)
		if err != nil {
			return reasonParse
		}
		h := ts.handlers[name]
		if h == nil {
			return "" // no handler, no acknowledgement
		}
		if reply, ok := h(s, args); ok && p.id >= 0 {
			_ = s.write(fmt.Sprintf("43%d[%s]", p.id, reply))
		}
	}
	return ""
}

// write sends one text frame.
func (s *testSocket) write(frame string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.ws.WriteMessage(websocket.TextMessage, []byte(frame))
}

// emit sends an event to the client.
func (s *testSocket) emit(event string, args ...any) {
	data, err := encodeEventData(event, args)
	if err != nil {
		panic(err)
	}
	_ = s.write("42" + string(data))
}

// close disconnects the socket from the server side: a disconnect packet,
// then the end of the connection.
func (s *testSocket) close() {
	_ = s.write("41")
	s.ws.Close()
}

// conn returns the server side of the connected socket with the given id.
func (ts *testServer) conn(t *testing.T, id string) *testSocket {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	s := ts.conns[id]
	if s == nil {
		t.Fatalf("server has no socket %q", id)
	}
	return s
}

// waitGone waits for the end of socket id and returns its reason.
func (ts *testServer) waitGone(t *testing.T, id string) string {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case d := <-ts.gone:
			if d.id == id {
				return d.reason
			}
		case <-deadline:
			t.Fatalf("server saw no end of %q", id)
		}
	}
}

// dial connects to url and closes the connection when the test ends.
func dial(t *testing.T, url string, opts Options) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// call runs c.Call with a bounded context and fails the test on error.
func call(t *testing.T, c *Conn, event string, args ...any) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	raw, err := c.Call(ctx, event, args...)
	if err != nil {
		t.Fatalf("Call(%q): %v", event, err)
	}
	return raw
}

// waitDone waits for the connection to end.
func waitDone(t *testing.T, c *Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("connection did not end")
	}
}

// fakeServer is a bare websocket endpoint scripted by the test, for wire
// details a real server never produces. It accepts one connection, writes
// what the test puts in out and forwards what it reads to in, except pings
// and pongs, which it counts on their own channels.
type fakeServer struct {
	url   string
	out   chan fakeFrame
	in    chan string
	query chan *http.Request // the handshake request
	pings chan struct{}      // one per ping ("2") received, when there is room
	pongs chan string        // each pong ("3...") received, when there is room
}

// fakeFrame is one action of a fakeServer.
type fakeFrame struct {
	binary bool
	drop   bool // close the TCP connection instead of writing
	data   string
}

// Open packets a fakeServer sends by default, per protocol.
const (
	fakeOpen  = `0{"sid":"fake-sid","upgrades":[],"pingInterval":25000,"pingTimeout":5000}`
	fakeOpen4 = `0{"sid":"fake-sid","upgrades":[],"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}`
)

// startFake starts a fakeServer that first sends frames (typically the open
// and connect packets).
func startFake(t *testing.T, frames ...string) *fakeServer {
	t.Helper()
	f := &fakeServer{
		out:   make(chan fakeFrame, 64),
		in:    make(chan string, 64),
		query: make(chan *http.Request, 1),
		pings: make(chan struct{}, 64),
		pongs: make(chan string, 64),
	}
	f.send(frames...)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.query <- r.Clone(context.Background())
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		stop := make(chan struct{})
		defer close(stop)
		go f.writeLoop(ws, stop)
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			switch {
			case string(msg) == "2":
				select {
				case f.pings <- struct{}{}:
				default:
				}
			case len(msg) > 0 && msg[0] == '3':
				select {
				case f.pongs <- string(msg):
				default:
				}
			default:
				f.in <- string(msg)
			}
		}
	}))
	f.url = hs.URL
	t.Cleanup(hs.Close)
	return f
}

// startFakeConnected starts a fakeServer that connects a client of the given
// protocol: the open packet, then "40" (protocol 3) or the CONNECT reply
// 40{"sid":"fake-sio"} (protocol 4). It dials it with opts and, in protocol
// 4, consumes the client's CONNECT packet.
func startFakeConnected(t *testing.T, proto int, opts Options) (*fakeServer, *Conn) {
	t.Helper()
	var f *fakeServer
	if proto == 3 {
		f = startFake(t, fakeOpen, "40")
	} else {
		f = startFake(t, fakeOpen4, `40{"sid":"fake-sio"}`)
	}
	opts.Protocol = proto
	c := dial(t, f.url, opts)
	if proto == 4 {
		f.expect(t, "40")
	}
	return f, c
}

// writeLoop writes the frames of f.out until stop is closed.
func (f *fakeServer) writeLoop(ws *websocket.Conn, stop <-chan struct{}) {
	for {
		select {
		case fr := <-f.out:
			switch {
			case fr.drop:
				ws.UnderlyingConn().Close()
			case fr.binary:
				ws.WriteMessage(websocket.BinaryMessage, []byte(fr.data))
			default:
				ws.WriteMessage(websocket.TextMessage, []byte(fr.data))
			}
		case <-stop:
			return
		}
	}
}

// send queues text frames for the client.
func (f *fakeServer) send(frames ...string) {
	for _, s := range frames {
		f.out <- fakeFrame{data: s}
	}
}

// expect reads the next frame the client sent and compares it with want.
func (f *fakeServer) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-f.in:
		if got != want {
			t.Fatalf("server read %s; want %s", got, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("server read nothing; want %s", want)
	}
}
