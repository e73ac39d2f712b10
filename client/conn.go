package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// error packet instead of the connect packet.
var ErrRefused = errors.New("client: connection refused by server")

// Options configure Dial. The zero value is ready to use.
type Options struct {
	// Token, when non-empty, is sent as the token query parameter.
	Token string
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
}

// Event is one event sent by the server: 42["name",arg1,...].
type Event struct {
	// Name is the event name.
	Name string
	// Args are the raw JSON arguments after the name.
	Args []json.RawMessage
	// Received is when the frame was read.
	Received time.Time
}

// Conn is a Socket.IO connection to the root namespace. All its methods are
// safe for concurrent use.
type Conn struct {
	ws           *websocket.Conn
	raw          net.Conn // the TCP connection under ws, closed by Drop
	sid          string
	pingInterval time.Duration
	pingTimeout  time.Duration
	onEvent      func(Event)

	wsem     chan struct{} // capacity 1: held while writing a data frame to ws
	notify   chan struct{} // capacity 1: tells run that queue has grown
	events   chan Event    // the Events channel; nil when onEvent is set
	done     chan struct{} // closed by finish
	readDone chan struct{} // closed when readLoop returns

	inCallback atomic.Bool // readLoop is inside onEvent

	mu      sync.Mutex // guards the following fields
	nextID  int64
	pending map[int64]chan json.RawMessage // closed (not sent to) on failure
	queue   []Event                        // events read but not yet taken by run
	closing bool                           // Close or Drop started
	ended   bool
	err     error
}

// Dial connects to the Socket.IO server at baseURL (http://host:port,
// https://..., ws:// or wss://, optionally with a path prefix to which
// "/socket.io/" is appended). It returns once the server has accepted the
// root namespace. The context bounds the whole handshake; once Dial has
// returned it has no effect on the connection.
func Dial(ctx context.Context, baseURL string, opts Options) (*Conn, error) {
	u, err := endpoint(baseURL, opts.Token)
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
		onEvent:  opts.OnEvent,
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
	var body strings.Builder
	if resp.Body != nil {
		buf := make([]byte, 256)
		n, _ := resp.Body.Read(buf)
		body.WriteString(strings.TrimSpace(string(buf[:n])))
	}
	return fmt.Errorf("client: dial %s: HTTP %d %q: %w", host, resp.StatusCode, body.String(), ErrRefused)
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

// readHandshake reads frames until the root namespace is connected.
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
			p, err := parseOpen(msg[1:])
			if err != nil {
				return err
			}
			c.sid = p.SID
			c.pingInterval = time.Duration(p.PingInterval) * time.Millisecond
			c.pingTimeout = time.Duration(p.PingTimeout) * time.Millisecond
			opened = true
		case eioClose:
			return errors.New("handshake: server closed the engine.io session")
		case eioMessage:
			p, err := parseSIO(msg[1:])
			if err != nil || !p.isRoot() {
				continue
			}
			switch {
			case p.typ == sioError:
				return fmt.Errorf("socket.io error %s: %w", strings.TrimSpace(string(p.data)), ErrRefused)
			case p.typ == sioConnect && !opened:
				return errors.New("handshake: connect packet before open packet")
			case p.typ == sioConnect:
				return nil
			}
		}
	}
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
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.ws.Close()
	for _, ch := range pending {
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

// ID returns the Engine.IO session id announced by the server's open packet.
func (c *Conn) ID() string { return c.sid }

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
