package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/googollee/go-socket.io/engineio/transport"
	"github.com/googollee/go-socket.io/engineio/transport/polling"
	"github.com/googollee/go-socket.io/engineio/transport/websocket"
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
	// MaxSocketsPerIP caps the sockets of one client IP. Zero value: no cap.
	MaxSocketsPerIP int
	// Rates are the per-socket rate limits. Zero value: DefaultRateLimits().
	Rates RateLimits
	// OutboundQueue is how many events may wait for a slow client before it
	// is disconnected. Zero value: 1024.
	OutboundQueue int
	// PingInterval and PingTimeout are the Engine.IO ones: a client silent for
	// their sum is dropped. Zero values: 10 s and 20 s.
	PingInterval, PingTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown. Zero value: 10 s.
	ShutdownTimeout time.Duration
	// Logger receives the server's logs. Zero value: slog.Default().
	Logger *slog.Logger
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 64 << 10
	}
	if o.Rates == (RateLimits{}) {
		o.Rates = DefaultRateLimits()
	}
	if o.OutboundQueue == 0 {
		o.OutboundQueue = 1024
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Presence = o.Presence.withDefaults()
	return o
}

// Server is one node: it owns the HTTP server, the go-socket.io server, the
// Redis pool and the pub/sub subscriber, and runs the modules. New builds
// it; Run serves on a listener the caller gives it until its context ends,
// then shuts down in the order spelled out in shutdown.
type Server struct {
	opts     ServerOptions
	log      *slog.Logger
	pool     *redis.Pool
	io       *socketio.Server
	hub      *hub
	metrics  *metrics
	presence *Presence
	channel  string
	mc       *ModuleContext

	// ctx is the parent of every handler's context; it ends after shutdown.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts
	ups    upgrades       // polling sessions upgrading to websocket

	mu       sync.Mutex // guards the following fields
	started  bool
	draining bool
	modules  []Module
	sockets  map[string]*Socket
	pending  map[string]pendingSession // handshakes not yet connected
	perIP    map[string]int            // connected sockets by client IP
	reserved map[string][]time.Time    // admitted handshakes not yet connected, by IP
	redisSub bool                      // the events subscription is up
	extra    map[string]http.Handler
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
	s := &Server{
		opts:     o,
		log:      o.Logger,
		pool:     newPool(redisDialer(o.RedisURL, o.RedisTLS)),
		hub:      newHub(o.Logger),
		channel:  p.channel(),
		ctx:      ctx,
		cancel:   cancel,
		sockets:  make(map[string]*Socket),
		pending:  make(map[string]pendingSession),
		perIP:    make(map[string]int),
		reserved: make(map[string][]time.Time),
	}
	s.metrics = newMetrics(s)
	s.io = socketio.NewServer(s.engineOptions())
	s.io.OnConnect("/", s.onConnect)
	s.io.OnDisconnect("/", s.onDisconnect)
	s.io.OnError("/", s.onError)
	s.io.OnEvent("/", holdEvent, s.holdReader)
	s.mc = &ModuleContext{IO: s.io, Redis: s.pool, Logger: o.Logger, srv: s, hub: s.hub, metrics: s.metrics}
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

// engineOptions configures Engine.IO: crypto-random session ids (the
// library's default is a guessable counter), both transports with the
// origin allowlist, and the ping timing.
func (s *Server) engineOptions() *engineio.Options {
	check := func(r *http.Request) bool { return s.originAllowed(r.Header.Get("Origin")) }
	return &engineio.Options{
		PingInterval:       s.opts.PingInterval,
		PingTimeout:        s.opts.PingTimeout,
		SessionIDGenerator: (*sessionIDs)(s),
		Transports: []transport.Transport{
			&polling.Transport{Client: &http.Client{Timeout: time.Minute}, CheckOrigin: check},
			// Zero buffer sizes: gorilla reuses the buffers net/http already
			// holds for the hijacked connection (about 8 KiB a socket less);
			// it resets the reader onto our frame-limited net.Conn.
			&websocket.Transport{CheckOrigin: check},
		},
	}
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

// socket returns the socket with session id sid, or nil.
func (s *Server) socket(sid string) *Socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sockets[sid]
}

// onConnect records a new socket and tells the modules. It must not Emit
// (go-socket.io's writer is not running yet), must not panic (the library
// does not recover it) and never returns an error: in go-socket.io v1.7.0 a
// refused connect leaves its session behind for good, so a socket that must
// go is closed instead. A second connect packet on a socket is ignored.
func (s *Server) onConnect(c socketio.Conn) error {
	defer s.recoverHook("connect")
	s.mu.Lock()
	if p, ok := s.pending[c.ID()]; ok {
		close(p.ready)
		delete(s.pending, c.ID())
	}
	draining := s.draining
	s.mu.Unlock()
	if draining { // connected after shutdown began: too late to be served
		s.spawn(func() { _ = c.Close() })
		return nil
	}
	var cl *claims
	if len(s.opts.JWTSecret) > 0 {
		u := c.URL()
		var err error
		if cl, err = verifyToken(s.opts.JWTSecret, u.Query().Get("token")); err != nil {
			s.log.Info("closing socket: token no longer valid", "conn", c.ID(), "err", err)
			s.spawn(func() { _ = c.Close() })
			return nil
		}
	}
	sock := &Socket{
		conn: c, id: c.ID(), ip: hostOf(c.RemoteAddr()), claims: cl,
		limits: newLimits(s.opts.Rates), maxQueue: s.opts.OutboundQueue, spawn: s.spawn, onFull: s.dropSlow,
	}
	s.mu.Lock()
	if _, dup := s.sockets[sock.id]; dup {
		s.mu.Unlock()
		return nil
	}
	s.sockets[sock.id] = sock
	s.perIP[sock.ip]++
	if r := s.reserved[sock.ip]; len(r) > 0 { // this handshake's reservation
		if s.reserved[sock.ip] = r[1:]; len(r) == 1 {
			delete(s.reserved, sock.ip)
		}
	}
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
	return nil
}

// onDisconnect forgets a socket and tells the modules, in reverse order.
// go-socket.io also calls it for connections it refused; those are not in
// the table.
func (s *Server) onDisconnect(c socketio.Conn, reason string) {
	defer s.recoverHook("disconnect")
	s.mu.Lock()
	sock := s.sockets[c.ID()]
	if sock != nil {
		delete(s.sockets, sock.id)
		if s.perIP[sock.ip]--; s.perIP[sock.ip] <= 0 {
			delete(s.perIP, sock.ip)
		}
	}
	mods := s.modules
	s.mu.Unlock()
	if sock == nil {
		return
	}
	sock.closeQueue()
	for i := len(mods) - 1; i >= 0; i-- {
		if h, ok := mods[i].(ConnectionHandler); ok {
			func() {
				defer s.recoverHook(mods[i].Name() + " OnDisconnect")
				h.OnDisconnect(sock)
			}()
		}
	}
	s.log.Debug("socket disconnected", "conn", sock.id, "reason", reason)
}

// recoverHook logs a panic in a connect or disconnect hook instead of letting
// it crash the process (go-socket.io does not recover those). Deferred.
func (s *Server) recoverHook(where string) {
	if r := recover(); r != nil {
		s.log.Error("hook panicked", "hook", where, "panic", r, "stack", string(debug.Stack()))
	}
}

// onError logs library-level errors (malformed packets, failed reads). The
// library passes a nil Conn for some of them.
func (s *Server) onError(c socketio.Conn, err error) {
	id := ""
	if c != nil {
		id = c.ID()
	}
	s.log.Debug("socket error", "conn", id, "err", err)
}

// dropSlow disconnects a socket whose outbound queue overflowed.
func (s *Server) dropSlow(sock *Socket) {
	s.metrics.droppedSlow()
	s.log.Warn("disconnecting slow client: outbound queue full", "conn", sock.id, "ip", sock.ip)
	_ = sock.conn.Close()
}

// hostOf returns the IP of a remote address.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
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
	s.spawn(func() {
		if err := s.io.Serve(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("socket.io serve loop ended", "err", err)
		}
	})
	// Serving before the subscription is up would lose the first events of
	// the first joins; with Redis down the node serves anyway (and answers
	// unavailable) after a bound.
	select {
	case <-s.startSubscriber(runCtx):
	case <-time.After(subReadTimeout):
		s.log.Warn("serving without the events subscription; Redis unreachable?")
	case <-ctx.Done():
	}
	for _, m := range mods {
		if r, ok := m.(Runner); ok {
			s.spawn(func() { r.Run(runCtx) })
		}
	}

	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
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

// shutdown stops the node, in this order:
//  1. refuse new handshakes and stop the listener;
//  2. close every socket: their connections get the full TTL as grace, so
//     their clients resume them on another node with no leave/join flap;
//  3. close the go-socket.io server (only now: a handshake after Close
//     would panic inside the library);
//  4. stop the subscriber, the reaper and the other runners, and wait for
//     every goroutine the server started (the disconnect writes among them);
//  5. run the modules' Shutdown hooks in reverse registration order;
//  6. close the Redis pool.
func (s *Server) shutdown(ctx context.Context, hs *http.Server, stopRunners context.CancelFunc, mods []Module) error {
	s.mu.Lock()
	s.draining = true
	socks := make([]*Socket, 0, len(s.sockets))
	for _, sock := range s.sockets {
		socks = append(socks, sock)
	}
	s.mu.Unlock()
	s.log.Info("shutting down", "sockets", len(socks))

	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Shutdown(ctx) }()
	for _, sock := range socks {
		sock.shutdown.Store(true)
		_ = sock.conn.Close()
	}
	err := <-httpDone
	s.settleHandshakes(ctx)
	_ = s.io.Close()

	stopRunners()
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("shutdown: goroutines still running: %w", ctx.Err()))
	}
	for i := len(mods) - 1; i >= 0; i-- {
		if sd, ok := mods[i].(Shutdowner); ok {
			if serr := sd.Shutdown(ctx); serr != nil {
				err = errors.Join(err, fmt.Errorf("module %s: %w", mods[i].Name(), serr))
			}
		}
	}
	s.cancel()
	if perr := s.pool.Close(); perr != nil {
		err = errors.Join(err, perr)
	}
	s.log.Info("shut down")
	return err
}
