package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// defaultHandshakeTimeout bounds the websocket handshake of the default
	// dialer, and the wait for the open and connect packets when the Dial
	// context has no deadline.
	defaultHandshakeTimeout = 10 * time.Second
	// writeWait bounds one websocket write; a write that takes longer ends the
	// connection.
	writeWait = 10 * time.Second
	// closeWait bounds how long Close waits for the server to end the
	// connection after the close handshake, before closing it itself.
	closeWait = time.Second
)

// ErrClosed is returned by calls on a connection that has ended, and by calls
// still waiting for their acknowledgement when it ends. Err wraps it once the
// connection has ended, whatever the cause.
var ErrClosed = errors.New("client: connection closed")

// ErrRefused is wrapped by the Dial error when the server refused the
// connection: an HTTP error status at the websocket handshake, or a Socket.IO
// error packet (CONNECT_ERROR in protocol 5) instead of the connect packet.
// The error is then a *RefusedError, which carries the server's reason.
var ErrRefused = errors.New("client: connection refused by server")

// RefusedError is why the server refused a connection. It wraps ErrRefused.
type RefusedError struct {
	// StatusCode is the HTTP status of a refused websocket handshake, or 0
	// when the server refused the namespace with a Socket.IO error packet.
	StatusCode int
	// Message is the server's reason: the error packet's message (for
	// example "unauthorized"), or the start of the HTTP response body.
	Message string
}

// Error describes the refusal.
func (e *RefusedError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("HTTP %d %q: %v", e.StatusCode, e.Message, ErrRefused)
	}
	return fmt.Sprintf("connect error %q: %v", e.Message, ErrRefused)
}

// Unwrap returns ErrRefused.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Options configure Dial. The zero value is ready to use.
type Options struct {
	// Protocol is the Engine.IO version to speak: 3 (Socket.IO protocol 4,
	// as socket.io-client 2.x) or 4 (Socket.IO protocol 5, as
	// socket.io-client 3.x and 4.x). Zero means 4.
	Protocol int
	// Token, when non-empty, is sent as the token query parameter (both
	// versions).
	Token string
	// Auth, when not nil, is sent as the auth object of the Socket.IO 5
	// CONNECT packet (for example map[string]string{"token": "..."}); it
	// must encode to a JSON object. Nil sends a bare CONNECT. Protocol 3 has
	// no auth object: Dial refuses a non-nil Auth there.
	Auth any
	// Header holds extra handshake headers (for example Origin).
	Header http.Header
	// Dialer opens the websocket. Nil means a dialer with a 10 s handshake
	// timeout that honours the proxy environment variables. Dial uses a copy
	// whose network dial goes through the Dialer's own NetDialContext or
	// NetDial (for example to bind a source address), so the same Dialer may
	// serve many connections.
	Dialer *websocket.Dialer
	// OnEvent, if set, is called from the read loop for every event the server
	// sends, in arrival order and never concurrently with itself. It must not
	// block for long: nothing else is read meanwhile, acknowledgements and
	// pongs included. If OnEvent is nil, events are queued for Events.
	OnEvent func(e Event)
	// OnRawEvent, if set, replaces OnEvent for event packets: it gets each
	// one's JSON array (["name", args...]) unparsed, valid only during the
	// call, from the read loop; frames are read into a reused buffer. It is
	// for load generators that must read many events cheaply.
	OnRawEvent func(data []byte, received time.Time)
}

// protocol returns the Engine.IO version the options ask for.
func (o *Options) protocol() (int, error) {
	switch o.Protocol {
	case 0, 4:
		return 4, nil
	case 3:
		if o.Auth != nil {
			return 0, errors.New("client: Options.Auth needs protocol 4")
		}
		return 3, nil
	}
	return 0, fmt.Errorf("client: Options.Protocol %d: want 3 or 4", o.Protocol)
}

// Event is one event sent by the server: 42["name",arg1,...].
type Event struct {
	// Name is the event name.
	Name string
	// Namespace is "" for the root namespace, else its name ("/chat";
	// see Conn.Of).
	Namespace string
	// Args are the raw JSON arguments after the name. In a binary event,
	// placeholders {"_placeholder":true,"num":n} stand for Attachments[n]
	// (Decode puts them in place).
	Args []json.RawMessage
	// Attachments are a binary event's attachments.
	Attachments [][]byte
	// Received is when the frame was read.
	Received time.Time
}

// Conn is a Socket.IO connection to the root namespace. All its methods are
// safe for concurrent use.
type Conn struct {
	ws           *websocket.Conn
	raw          net.Conn // the TCP connection under ws, closed by Drop
	protocol     int      // Engine.IO version: 3 or 4
	auth         any      // the CONNECT auth object (protocol 4)
	engineID     string   // the open packet's sid
	sid          string   // the socket's id: engineID, or the CONNECT reply's sid (protocol 4)
	pingInterval time.Duration
	pingTimeout  time.Duration
	onEvent      func(Event)
	onRaw        func([]byte, time.Time)

	wsem     chan struct{} // capacity 1: held while writing a data frame to ws
	notify   chan struct{} // capacity 1: tells run that queue has grown
	events   chan Event    // the Events channel; nil when onEvent is set
	done     chan struct{} // closed by finish
	readDone chan struct{} // closed when readLoop returns

	inCallback atomic.Bool    // readLoop is inside onEvent
	bin        *pendingBinary // a binary packet waiting for its attachments; readLoop's own
	muted      atomic.Bool    // Mute was called; set while holding wsem and deadlineMu

	// deadlineMu orders the read loop's deadline updates with Mute, so
	// that a muted connection is left without a read deadline.
	deadlineMu sync.Mutex

	mu      sync.Mutex // guards the following fields
	nextID  int64
	pending map[int64]chan json.RawMessage // closed (not sent to) on failure
	// nsPending and connecting are namespace calls and CONNECTs waiting
	// for the server (see Of), closed like pending.
	nsPending  map[int64]chan nsReply
	connecting map[string]chan nsResult
	joined     map[string]bool // namespaces connected through Of
	queue      []Event         // events read but not yet taken by run
	closing    bool            // Close or Drop started
	ended      bool
	err        error
}

// Dial connects to the Socket.IO server at baseURL (http://host:port,
// https://..., ws:// or wss://, optionally with a path prefix to which
// "/socket.io/" is appended). It returns once the server has accepted the
// root namespace. The context bounds the whole handshake; once Dial has
// returned it has no effect on the connection.
func Dial(ctx context.Context, baseURL string, opts Options) (*Conn, error) {
	protocol, err := opts.protocol()
	if err != nil {
		return nil, err
	}
	if _, err := connectFrame(opts.Auth); err != nil {
		return nil, err
	}
	u, err := endpoint(baseURL, opts.Token, protocol)
	if err != nil {
		return nil, err
	}
	var raw net.Conn
	d := capturingDialer(opts.Dialer, &raw)
	ws, resp, err := d.DialContext(ctx, u.String(), opts.Header)
	if err != nil {
		return nil, handshakeError(u.Host, resp, err)
	}
	if raw == nil {
		raw = ws.UnderlyingConn()
	}
	c := &Conn{
		ws:       ws,
		raw:      raw,
		protocol: protocol,
		auth:     opts.Auth,
		onEvent:  opts.OnEvent,
		onRaw:    opts.OnRawEvent,
		wsem:     make(chan struct{}, 1),
		notify:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
		pending:  make(map[int64]chan json.RawMessage),
	}
	if c.onEvent == nil {
		c.events = make(chan Event)
	}
	timeout := d.HandshakeTimeout
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	if err := c.handshake(ctx, timeout); err != nil {
		ws.Close()
		return nil, fmt.Errorf("client: dial %s: %w", u.Host, err)
	}
	go c.readLoop()
	go c.run()
	return c, nil
}

// capturingDialer returns a copy of base (or of the default dialer) whose
// network dial records the TCP connection in *raw, so that Drop can cut it
// below any TLS layer.
func capturingDialer(base *websocket.Dialer, raw *net.Conn) *websocket.Dialer {
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: defaultHandshakeTimeout}
	if base != nil {
		d = *base
	}
	dialContext, dial := d.NetDialContext, d.NetDial
	d.NetDial = nil
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		switch {
		case dialContext != nil:
			conn, err = dialContext(ctx, network, addr)
		case dial != nil:
			conn, err = dial(network, addr)
		default:
			var nd net.Dialer
			conn, err = nd.DialContext(ctx, network, addr)
		}
		if err == nil {
			*raw = conn
		}
		return conn, err
	}
	return &d
}

// handshakeError describes a failed websocket handshake; an HTTP answer other
// than 101 wraps ErrRefused and quotes the start of the response body.
func handshakeError(host string, resp *http.Response, err error) error {
	if resp == nil || !errors.Is(err, websocket.ErrBadHandshake) {
		return fmt.Errorf("client: dial %s: %w", host, err)
	}
	var body string
	if resp.Body != nil {
		buf := make([]byte, 256)
		n, _ := io.ReadFull(resp.Body, buf)
		body = strings.TrimSpace(string(buf[:n]))
	}
	return fmt.Errorf("client: dial %s: %w", host, &RefusedError{StatusCode: resp.StatusCode, Message: body})
}

// handshake reads the Engine.IO open packet and then the Socket.IO connect
// packet of the root namespace, within ctx and at most timeout when ctx has no
// deadline.
func (c *Conn) handshake(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ctxDeadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		deadline = ctxDeadline
	}
	if err := c.ws.SetReadDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.ws.Close() })
	err := c.readHandshake()
	switch {
	case !stop():
		return ctx.Err()
	case err != nil && hasDeadline && !time.Now().Before(ctxDeadline):
		// The read deadline is the context's; report it as such.
		return context.DeadlineExceeded
	}
	return err
}

// readHandshake reads frames until the root namespace is connected. In
// protocol 4 it sends the CONNECT packet once the open packet has arrived,
// and answers the server's pings meanwhile.
func (c *Conn) readHandshake() error {
	opened := false
	for {
		typ, msg, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		if typ != websocket.TextMessage || len(msg) == 0 {
			continue
		}
		switch msg[0] {
		case eioOpen:
			if err := c.handleOpen(msg[1:]); err != nil {
				return err
			}
			opened = true
		case eioPing:
			if c.protocol == 4 && opened {
				if err := c.writeHandshake(append([]byte{eioPong}, msg[1:]...)); err != nil {
					return err
				}
			}
		case eioClose:
			return errors.New("handshake: server closed the engine.io session")
		case eioMessage:
			p, err := parseSIO(msg[1:])
			if err != nil || !p.isRoot() {
				continue
			}
			switch {
			case p.typ == sioError:
				return &RefusedError{Message: errorMessage(p.data)}
			case p.typ == sioConnect && !opened:
				return errors.New("handshake: connect packet before open packet")
			case p.typ == sioConnect:
				if c.protocol == 4 {
					if sid := parseConnected(p.data); sid != "" {
						c.sid = sid
					}
				}
				return nil
			}
		}
	}
}

// handleOpen takes the session parameters from the open packet's body and,
// in protocol 4, sends the CONNECT packet.
func (c *Conn) handleOpen(body []byte) error {
	p, err := parseOpen(body)
	if err != nil {
		return err
	}
	c.engineID, c.sid = p.SID, p.SID
	c.pingInterval = time.Duration(p.PingInterval) * time.Millisecond
	c.pingTimeout = time.Duration(p.PingTimeout) * time.Millisecond
	if c.protocol != 4 {
		return nil
	}
	f, err := connectFrame(c.auth)
	if err != nil {
		return err
	}
	return c.writeHandshake(f)
}

// writeHandshake writes one text frame during the handshake, when the read
// loop and the other writers have not started yet.
func (c *Conn) writeHandshake(frame []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return fmt.Errorf("handshake: write: %w", err)
	}
	return nil
}

// finish ends the connection once: it records why (ErrClosed itself when
// Close or Drop started it), closes the websocket, fails the pending calls and
// closes done.
func (c *Conn) finish(cause error) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	if c.closing {
		cause = ErrClosed
	}
	c.err = cause
	pending, nsPending, connecting := c.pending, c.nsPending, c.connecting
	c.pending, c.nsPending, c.connecting = nil, nil, nil
	c.mu.Unlock()
	c.ws.Close()
	for _, ch := range pending {
		close(ch)
	}
	for _, ch := range nsPending {
		close(ch)
	}
	for _, ch := range connecting {
		close(ch)
	}
	close(c.done)
}

// startClosing marks the connection as closing by its owner and reports
// whether this call did so (false: it had already ended or was closing).
func (c *Conn) startClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.closing {
		return false
	}
	c.closing = true
	return true
}

// ID returns the socket's id as the server knows it: in protocol 3 the
// Engine.IO session id of the open packet, in protocol 4 the sid of the
// server's CONNECT reply (the open packet's when the reply has none).
func (c *Conn) ID() string { return c.sid }

// EngineID returns the Engine.IO session id announced by the open packet. In
// protocol 3 it is ID.
func (c *Conn) EngineID() string { return c.engineID }

// Protocol returns the Engine.IO version of the connection: 3 or 4.
func (c *Conn) Protocol() int { return c.protocol }

// Mute makes the connection silent at the Engine.IO level, for tests of the
// server's liveness checks: from then on it sends no ping (protocol 3) and
// answers none of the server's pings (protocol 4). It keeps the TCP
// connection open and keeps reading, events and acknowledgements included,
// and it no longer ends the connection itself when the server goes quiet, so
// that only the server can end it. Mute waits for a write in progress; once
// it has returned, no ping or pong is sent. It is idempotent.
func (c *Conn) Mute() {
	select {
	case c.wsem <- struct{}{}:
		defer func() { <-c.wsem }()
	case <-c.done:
	}
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.muted.Store(true)
	_ = c.ws.SetReadDeadline(time.Time{})
}

// Events returns the channel on which the server's events arrive, in order,
// when Options.OnEvent is nil (it returns nil otherwise). Events are queued
// without bound, so the connection never waits for the reader. The channel is
// closed once the connection has ended and every queued event was received.
// A program that does not read Events should set Options.OnEvent, even to a
// no-op: otherwise events pile up in memory, and once the connection has
// ended one goroutine waits for them to be read.
func (c *Conn) Events() <-chan Event { return c.events }

// Done returns a channel that is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, and then why it ended: ErrClosed
// itself after Close or Drop, otherwise an error that wraps ErrClosed and says
// what happened (server close, ping timeout, read or write failure).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection politely: it sends the Socket.IO disconnect
// packet and a websocket close frame, waits up to one second for the server to
// close its side (so that the TCP TIME_WAIT state lands on the server), then
// closes the connection. Calls still waiting for acknowledgements fail with
// ErrClosed. Close is idempotent and always returns nil. Called from OnEvent,
// it does not wait for the server.
func (c *Conn) Close() error {
	if !c.startClosing() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeWait)
	defer cancel()
	select {
	case c.wsem <- struct{}{}:
		if c.writeLocked(frameDisconnect) == nil {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(writeWait))
		}
		<-c.wsem
	case <-c.done:
	case <-ctx.Done():
	}
	if !c.inCallback.Load() {
		t := time.NewTimer(closeWait)
		select {
		case <-c.readDone:
		case <-t.C:
		}
		t.Stop()
	}
	c.finish(ErrClosed)
	return nil
}

// Drop ends the connection abruptly, as a network loss would: it closes the
// TCP connection without a Socket.IO disconnect packet or a websocket close
// frame. Calls still waiting for acknowledgements fail with ErrClosed. Drop is
// idempotent and returns the error of closing the TCP connection, if any.
func (c *Conn) Drop() error {
	if !c.startClosing() {
		return nil
	}
	err := c.raw.Close()
	c.finish(ErrClosed)
	return err
}
