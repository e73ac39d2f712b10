package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ServerOptions configures a Server. Zero values take the defaults given.
type ServerOptions struct {
	// RedisURL is the Redis to use: redis://[user:password@]host:port[/db],
	// or rediss:// for TLS. Required.
	RedisURL string
	// RedisTLS configures TLS for rediss:// URLs (a private CA, say). Zero
	// value: the system's roots.
	RedisTLS *tls.Config
	// Presence configures the built-in presence module.
	Presence PresenceOptions
	// AllowedOrigins lists the Origin values browsers may connect from, on
	// both transports. Empty: any origin.
	AllowedOrigins []string
	// JWTSecret turns authentication on: every handshake needs an HS256
	// token signed with it. Empty: client-supplied user ids are trusted.
	JWTSecret []byte
	// APIToken guards the HTTP presence API. Empty: the API is open, unless
	// JWTSecret is set, when it refuses everyone.
	APIToken string
	// MetricsToken guards GET /metrics: "Bearer <MetricsToken>". Empty: the
	// metrics are open to anyone who can reach the port.
	MetricsToken string
	// MaxMessageBytes bounds one Socket.IO message: a larger websocket frame
	// closes its socket; polling bodies may carry twice that. Zero value: 64 KiB.
	MaxMessageBytes int
	// MaxSocketsPerIP caps the sessions of one client IP, from handshake
	// until gone. Zero value: no cap.
	MaxSocketsPerIP int
	// MaxHTTPConnsPerIP caps one client IP's HTTP connections that are not
	// websockets (idle keep-alive, polling, handshakes in progress). Zero
	// value: 4 x MaxSocketsPerIP, or no cap when that is zero.
	MaxHTTPConnsPerIP int
	// Rates are the per-socket rate limits. Zero value: DefaultRateLimits().
	Rates RateLimits
	// OutboundQueueBytes bounds what may wait for one client: a client that
	// lets more pile up is not reading and is disconnected. Zero value: 4 MiB.
	OutboundQueueBytes int
	// PingInterval and PingTimeout are the Engine.IO ones: a client silent for
	// their sum is dropped. Zero values: 10 s and 20 s.
	PingInterval, PingTimeout time.Duration
	// ConnectTimeout bounds how long a session may stay in no namespace
	// ("/" included): after its handshake, or after it left its last one.
	// Zero value: PingTimeout.
	ConnectTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown. Zero value: 10 s.
	ShutdownTimeout time.Duration
	// Logger receives the server's logs. Zero value: slog.Default().
	Logger *slog.Logger

	// subLinger overrides subLinger, slowAfter slowAfter, shedBytes
	// shedQueuedBytes; wrapSubs
	// wraps the subscriptions' view of Redis (tests).
	subLinger time.Duration
	slowAfter time.Duration
	shedBytes int64
	wrapSubs  func(subBackend) subBackend
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 64 << 10
	}
	if o.Rates == (RateLimits{}) {
		o.Rates = DefaultRateLimits()
	}
	if o.OutboundQueueBytes == 0 {
		o.OutboundQueueBytes = 4 << 20
	}
	if o.PingInterval == 0 {
		o.PingInterval = 10 * time.Second
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = 20 * time.Second
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.MaxHTTPConnsPerIP == 0 {
		o.MaxHTTPConnsPerIP = 4 * o.MaxSocketsPerIP
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Presence = o.Presence.withDefaults()
	return o
}

// Server is one node: it owns the HTTP server, the Socket.IO engine, the
// Redis pool and the pub/sub subscriber, and runs the modules. New builds
// it; Run serves on a listener the caller gives it until its context ends,
// then shuts down in the order spelled out in shutdown.
type Server struct {
	opts     ServerOptions
	log      *slog.Logger
	pool     *redis.Pool
	target   *redisTarget // what pool dials: a single Redis or a cluster
	eng      *Engine
	hub      *hub
	metrics  *metrics
	presence *Presence
	subs     *subscriptions
	mc       *ModuleContext

	// ctx is the parent of every handler's context; it ends when shutdown
	// starts, so calls in flight give up instead of holding it up.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts

	mu         sync.Mutex // guards the following fields
	started    bool
	draining   bool
	modules    []Module
	handlers   map[string]HandlerFunc // by event name; written only before Run
	namespaces map[string]*Namespace  // by name; added only before Run
	redisSub   bool                   // every bucket in use is subscribed
	extra      map[string]http.Handler
	httpIP     map[string]int // HTTP connections not (yet) upgraded, by client IP
}

// New returns a server with the presence module registered. It does not
// listen on its own: see Run.
func New(opts ServerOptions) (*Server, error) {
	o := opts.withDefaults()
	if o.RedisURL == "" {
		return nil, errors.New("server: no Redis URL")
	}
	p, err := NewPresence(o.Presence)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	target := newRedisTarget(o.RedisURL, o.RedisTLS)
	s := &Server{
		opts:       o,
		log:        o.Logger,
		pool:       newPool(target.dial),
		target:     target,
		hub:        newHub(o.Logger),
		ctx:        ctx,
		cancel:     cancel,
		handlers:   make(map[string]HandlerFunc),
		namespaces: make(map[string]*Namespace),
		httpIP:     make(map[string]int),
	}
	var be subBackend = redisSubs{t: target, pool: s.pool}
	if o.wrapSubs != nil {
		be = o.wrapSubs(be)
	}
	s.subs = newSubscriptions(be, p.opts.Prefix, p.bucketChannel, s.hub.deliver, o.Logger, s.spawn)
	if o.subLinger > 0 {
		s.subs.linger = o.subLinger
	}
	s.hub.subs = s.subs
	s.metrics = newMetrics(s)
	s.eng = newEngine(engineOptions{
		pingInterval:   o.PingInterval,
		pingTimeout:    o.PingTimeout,
		connectTimeout: o.ConnectTimeout,
		maxMessage:     o.MaxMessageBytes,
		maxQueueBytes:  o.OutboundQueueBytes,
		maxPerIP:       o.MaxSocketsPerIP,
		shedBytes:      o.shedBytes,
		homeBucket:     randomBucket(),
		slowAfter:      o.slowAfter,
	}, s, o.Logger, s.spawn)
	s.mc = &ModuleContext{Engine: s.eng, Redis: s.pool, Logger: o.Logger, srv: s, hub: s.hub, metrics: s.metrics}
	s.presence = p
	if err := s.Use(p); err != nil {
		return nil, err
	}
	return s, nil
}

// Presence returns the built-in presence module.
func (s *Server) Presence() *Presence { return s.presence }

// Use registers a module. It is an error after Run has started.
func (s *Server) Use(m Module) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return fmt.Errorf("server: module %q registered after the server started", m.Name())
	}
	s.modules = append(s.modules, m)
	s.mu.Unlock()
	if err := m.Register(s.mc); err != nil {
		return fmt.Errorf("module %s: %w", m.Name(), err)
	}
	return nil
}

// idLen is the length of ids made by newID.
const idLen = 22

// newID returns 128 random bits as 22 URL-safe characters: session ids,
// connIds and message ids. They are unique across nodes and not guessable.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// randomBucket picks a node's home bucket (see newSessionID): nodes spread
// their sockets' own rooms over the buckets.
func randomBucket() int {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return int(b[0]) % roomBuckets
}

// spawn runs f on a goroutine the server waits for on shutdown.
func (s *Server) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// subscribed reports whether the events subscription is up.
func (s *Server) subscribed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.redisSub
}

// socket returns the live socket with session id sid, or nil.
func (s *Server) socket(sid string) *Socket { return s.eng.Socket(sid) }

// The Server is the engine's host (engineHost): what follows is called by the
// engine, on the goroutine of the session concerned.

// originAllowed reports whether a browser from origin may connect. Requests
// without an Origin header do not come from a browser page and are allowed.
func (s *Server) originAllowed(origin string) bool {
	return origin == "" || len(s.opts.AllowedOrigins) == 0 || slices.Contains(s.opts.AllowedOrigins, origin)
}

// admit decides on a handshake; a zero status admits it. With auth on, a
// token in the query must be valid (both versions); without one, a v3
// handshake is refused and a v4 one may still bring it in its CONNECT.
func (s *Server) admit(r *http.Request, proto int) (int, string) {
	status, msg := func() (int, string) {
		s.mu.Lock()
		draining := s.draining
		s.mu.Unlock()
		if draining {
			return http.StatusServiceUnavailable, "server shutting down"
		}
		if len(s.opts.JWTSecret) == 0 {
			return 0, ""
		}
		token := r.URL.Query().Get("token")
		if token == "" && proto == 4 {
			return 0, ""
		}
		if _, err := verifyToken(s.opts.JWTSecret, token); err != nil {
			s.log.Info("handshake refused", "reason", err.Error(), "ip", hostOf(r.RemoteAddr))
			return http.StatusUnauthorized, "unauthorized"
		}
		return 0, ""
	}()
	if status != 0 {
		s.metrics.refused(strconv.Itoa(status))
	}
	return status, msg
}

// errUnauthorizedConnect is the v4 CONNECT refusal for a bad or missing token.
var errUnauthorizedConnect = errors.New("unauthorized")

// authorize sets up a socket's claims and limits, unless a CONNECT to
// another namespace did (verify), and puts it in its implicit rooms. auth
// is the v4 CONNECT auth object: its token, when present, is the one that
// counts.
func (s *Server) authorize(sock *Socket, auth json.RawMessage) error {
	if sock.limits == nil {
		if err := s.verify(sock, auth); err != nil {
			return err
		}
	}
	s.joinImplicit(sock)
	return nil
}

// verify checks the token of a session's first CONNECT, of any namespace,
// and sets up its socket's claims and limits.
func (s *Server) verify(sock *Socket, auth json.RawMessage) error {
	if len(s.opts.JWTSecret) > 0 {
		token := sock.sess.token
		var a struct {
			Token *string `json:"token"`
		}
		if len(auth) > 0 && json.Unmarshal(auth, &a) == nil && a.Token != nil {
			token = *a.Token
		}
		cl, err := verifyToken(s.opts.JWTSecret, token)
		if err != nil {
			s.log.Info("connect refused", "reason", err.Error(), "ip", sock.IP())
			s.metrics.refused("connect")
			return errUnauthorizedConnect
		}
		sock.claims = cl
		sock.user = cl.sub
	}
	sock.limits = newLimits(s.opts.Rates)
	sock.hub = s.hub
	return nil
}

// joinImplicit puts an authorized socket in its implicit rooms (its own,
// and its user's when its token named one) and waits, within the handler
// deadline, until the node hears them: the client is told it is connected
// only then, so what a backend sends it from that moment on reaches it. With
// Redis unreachable it does not wait (the socket hears its rooms once the
// subscriptions are back).
func (s *Server) joinImplicit(sock *Socket) {
	rooms := []string{socketRoom(sock.id)}
	if u := sock.User(); u != "" {
		rooms = append(rooms, userRoom(u))
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Presence.OpTimeout)
	defer cancel()
	for _, room := range rooms {
		s.hub.join(sock, room)
		if err := s.hub.ready(ctx, room); err != nil {
			s.log.Debug("connected before its rooms are heard", "conn", sock.id, "err", err)
			return
		}
	}
}

// connect tells the modules of a connected socket.
func (s *Server) connect(sock *Socket) {
	s.mu.Lock()
	mods := s.modules
	s.mu.Unlock()
	for _, m := range mods {
		if h, ok := m.(ConnectionHandler); ok {
			func() {
				defer s.recoverHook(m.Name() + " OnConnect")
				h.OnConnect(sock)
			}()
		}
	}
}

// disconnect tells the modules, in reverse order, that a socket is gone.
func (s *Server) disconnect(sock *Socket, reason string) {
	s.mu.Lock()
	mods := s.modules
	s.mu.Unlock()
	for i := len(mods) - 1; i >= 0; i-- {
		if h, ok := mods[i].(ConnectionHandler); ok {
			func() {
				defer s.recoverHook(mods[i].Name() + " OnDisconnect")
				h.OnDisconnect(sock)
			}()
		}
	}
	s.hub.drop(sock) // a client that left "/" keeps its session for other namespaces
	s.log.Debug("socket disconnected", "conn", sock.id, "reason", reason)
}

// gone takes a socket that ended, connected or not, out of every room.
func (s *Server) gone(sock *Socket) { s.hub.drop(sock) }

// slow counts and logs a socket dropped for not reading what it is sent.
func (s *Server) slow(sock *Socket) {
	s.metrics.droppedSlow()
	s.log.Warn("disconnecting slow client: outbound queue full", "conn", sock.id, "ip", sock.IP())
}

// recoverHook logs a panic in a connect or disconnect hook instead of letting
// it crash the process. Deferred.
func (s *Server) recoverHook(where string) {
	if r := recover(); r != nil {
		s.log.Error("hook panicked", "hook", where, "panic", r, "stack", string(debug.Stack()))
	}
}

// hostOf returns the IP of a remote address "host:port".
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// Run serves on ln until ctx ends, then shuts down gracefully within
// ShutdownTimeout. It returns the first error that stopped it, nil after a
// clean shutdown.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("server: Run called twice")
	}
	s.started = true
	mods := s.modules
	s.mu.Unlock()

	runCtx, stopRunners := context.WithCancel(context.Background())
	defer stopRunners()
	// Serving before Redis's pub/sub kind is known would publish the first
	// events the wrong way; with Redis down the node serves anyway (and
	// answers unavailable) after a bound.
	select {
	case <-s.startSubscriptions(runCtx):
	case <-time.After(subReadTimeout):
		s.log.Warn("serving without the events subscription; Redis unreachable?")
	case <-ctx.Done():
	}
	for _, m := range mods {
		if r, ok := m.(Runner); ok {
			s.spawn(func() { r.Run(runCtx) })
		}
	}

	hs := s.httpServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }() // ends when shutdown closes hs
	s.log.Info("serving", "addr", ln.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if serr := s.shutdown(sctx, hs, stopRunners, mods); err == nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// HTTP timeouts for plain requests. A long poll lifts them for itself
// (engine_polling.go); a websocket sets its own deadlines once hijacked.
const (
	httpHeaderTimeout = 10 * time.Second
	httpReadTimeout   = 30 * time.Second
	httpWriteTimeout  = 30 * time.Second
	httpIdleTimeout   = 60 * time.Second
)

// httpServer returns the node's HTTP server: timeouts on every phase of a
// plain request, and a cap on one IP's connections that are not (yet)
// websockets, so idle or slow connections cannot use up the node's file
// descriptors.
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: httpHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		ConnState:         s.trackConn,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// trackConn counts each IP's HTTP connections that are not websockets and
// closes a new one over MaxHTTPConnsPerIP.
func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	limit := s.opts.MaxHTTPConnsPerIP
	if limit <= 0 {
		return
	}
	ip := hostOf(c.RemoteAddr().String())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch state {
	case http.StateNew:
		if s.httpIP[ip] >= limit {
			s.metrics.refused("conns-per-ip")
			_ = c.Close() // net/http then reports StateClosed: counted below
		}
		s.httpIP[ip]++
	case http.StateHijacked, http.StateClosed:
		if s.httpIP[ip]--; s.httpIP[ip] <= 0 {
			delete(s.httpIP, ip)
		}
	}
}

// shutdown stops the node, in this order:
//  1. cancel the handlers' calls in flight, refuse new handshakes and stop
//     the listener;
//  2. close every socket: their connections get the full TTL as grace, so
//     their clients resume them on another node with no leave/join flap;
//     this also answers every parked poll, which the listener's shutdown
//     waits for;
//  3. stop the subscriptions, the reaper and the other runners, and wait for
//     every goroutine the server started (readers, writers, the disconnect
//     writes among them);
//  4. run the modules' Shutdown hooks in reverse registration order;
//  5. close the Redis pool.
func (s *Server) shutdown(ctx context.Context, hs *http.Server, stopRunners context.CancelFunc, mods []Module) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.cancel()
	socks := s.eng.drain()
	s.log.Info("shutting down", "sockets", len(socks))

	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Shutdown(ctx) }()
	for _, sess := range socks {
		sess.sock.shutdown.Store(true)
		sess.close("server shutting down")
	}
	err := <-httpDone

	stopRunners()
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("shutdown: goroutines still running: %w", ctx.Err()))
	}
	s.eng.stop()
	for i := len(mods) - 1; i >= 0; i-- {
		if sd, ok := mods[i].(Shutdowner); ok {
			if serr := sd.Shutdown(ctx); serr != nil {
				err = errors.Join(err, fmt.Errorf("module %s: %w", mods[i].Name(), serr))
			}
		}
	}
	if perr := s.pool.Close(); perr != nil {
		err = errors.Join(err, perr)
	}
	s.log.Info("shut down")
	return err
}
