package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// Namespace is a Socket.IO namespace other than "/" that a module serves
// (ModuleContext.Namespace): its clients connect to it on their session
// ("40/name," with v4's auth object), send it events with any number of
// arguments, binary ones included, and get acknowledgements of them. "/"
// stays what it is: presence and the modules' Handle events.
//
// Set its hooks and handlers from Register; its methods are safe for
// concurrent use.
type Namespace struct {
	name string
	srv  *Server

	// Guarded by srv.mu.
	authorize  func(c *NSConn, auth json.RawMessage) error
	connect    func(c *NSConn)
	disconnect func(c *NSConn, reason string)
	handlers   map[string]NamespaceHandler
}

// NamespaceHandler handles one event of a namespace. args are the event's
// arguments as encoding/json decodes them into any (numbers are float64),
// with each binary attachment as a []byte. When the client asked for an
// acknowledgement, the values returned are its arguments ([]byte values
// among them, within []any and map[string]any too, go as binary
// attachments); an error is answered as one argument, the error object of
// PROTOCOL.md: {"ok":false,"error":{"code":...,"message":...}}.
type NamespaceHandler func(ctx context.Context, c *NSConn, args []any) ([]any, error)

// NSConn is a socket's connection to a namespace: the session's Socket
// (identity, claims, user, data) and the namespace's name.
type NSConn struct {
	sock *Socket
	nsp  string
}

// Socket returns the socket of the session: the same for every namespace
// its client connects to.
func (c *NSConn) Socket() *Socket { return c.sock }

// Namespace returns the namespace's name ("/chat").
func (c *NSConn) Namespace() string { return c.nsp }

// Emit queues event with args for the client, within the namespace; []byte
// values among args (within []any and map[string]any too) go as binary
// attachments. It never blocks; it reports false when the socket is gone.
func (c *NSConn) Emit(event string, args ...any) bool {
	body, att := encodeArgs(append([]any{event}, args...))
	return c.sock.sess.sendFrames(packetFrames(c.sock.proto, sioEvent, c.nsp, -1, body, att))
}

// Close disconnects the client from the namespace (it is sent the
// namespace's DISCONNECT); its session and other namespaces stay.
func (c *NSConn) Close() {
	c.sock.sess.eng.leaveNamespace(c.sock.sess, c.nsp, "server namespace disconnect", true)
}

// Namespace returns the namespace name ("/chat": a "/" and 1 to 127 bytes
// of printable ASCII without "," or "?"), registering it on first use;
// modules that share a name share the namespace. Call it from Register.
func (mc *ModuleContext) Namespace(name string) (*Namespace, error) {
	if !validNamespace(name) {
		return nil, fmt.Errorf("namespace %q: want \"/\" and 1 to %d printable ASCII bytes without ',' or '?'", name, maxNamespaceLen-1)
	}
	s := mc.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.namespaces[name]; n != nil {
		return n, nil
	}
	n := &Namespace{name: name, srv: s, handlers: make(map[string]NamespaceHandler)}
	s.namespaces[name] = n
	return n, nil
}

// validNamespace reports whether name can name a namespace other than "/".
func validNamespace(name string) bool {
	if len(name) < 2 || len(name) > maxNamespaceLen || name[0] != '/' || strings.ContainsAny(name, ",?") {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] > '~' {
			return false
		}
	}
	return true
}

// Name returns the namespace's name.
func (n *Namespace) Name() string { return n.name }

// Authorize sets the namespace's admission: f decides on each CONNECT
// (auth is v4's auth object, nil for v3 or when absent); an error refuses
// it, its text (an *Error's message) going to the client in the connect
// error. Without it every client the node admits may connect.
func (n *Namespace) Authorize(f func(c *NSConn, auth json.RawMessage) error) {
	n.srv.mu.Lock()
	defer n.srv.mu.Unlock()
	n.authorize = f
}

// OnConnect sets f to be told of each connection to the namespace, after
// its client was told it is connected; f may Emit.
func (n *Namespace) OnConnect(f func(c *NSConn)) {
	n.srv.mu.Lock()
	defer n.srv.mu.Unlock()
	n.connect = f
}

// OnDisconnect sets f to be told once of each connection that ends: the
// client or the server left the namespace, or the socket is gone.
func (n *Namespace) OnDisconnect(f func(c *NSConn, reason string)) {
	n.srv.mu.Lock()
	defer n.srv.mu.Unlock()
	n.disconnect = f
}

// Handle attaches h to event within the namespace. The handler runs with
// the node's operation deadline, is rate limited as "other" events are,
// never panics out, and always answers an acknowledgement that asked for
// one (unknown events with invalid_payload "unknown event").
func (n *Namespace) Handle(event string, h NamespaceHandler) {
	n.srv.mu.Lock()
	defer n.srv.mu.Unlock()
	n.handlers[event] = h
}

// namespace returns the registered namespace nsp, or nil.
func (s *Server) namespace(nsp string) *Namespace {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.namespaces[nsp]
}

// nspAuthorize decides on a CONNECT to a namespace (engineHost). A session
// is authenticated once, at its first CONNECT of any namespace.
func (s *Server) nspAuthorize(sock *Socket, nsp string, auth json.RawMessage) (err error) {
	n := s.namespace(nsp)
	if n == nil {
		return errUnknownNamespace
	}
	if sock.limits == nil {
		if err := s.verify(sock, auth); err != nil {
			return err
		}
	}
	s.mu.Lock()
	f := n.authorize
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("namespace authorize panicked", "nsp", nsp, "panic", r, "stack", string(debug.Stack()))
			err = errInternal
		}
	}()
	return f(&NSConn{sock: sock, nsp: nsp}, auth)
}

// nspConnect tells the namespace of a connection (engineHost).
func (s *Server) nspConnect(sock *Socket, nsp string) {
	n := s.namespace(nsp)
	s.mu.Lock()
	f := n.connect
	s.mu.Unlock()
	if f != nil {
		defer s.recoverHook(nsp + " OnConnect")
		f(&NSConn{sock: sock, nsp: nsp})
	}
}

// nspDisconnect tells the namespace that a connection ended (engineHost).
func (s *Server) nspDisconnect(sock *Socket, nsp, reason string) {
	n := s.namespace(nsp)
	s.mu.Lock()
	f := n.disconnect
	s.mu.Unlock()
	if f != nil {
		defer s.recoverHook(nsp + " OnDisconnect")
		f(&NSConn{sock: sock, nsp: nsp}, reason)
	}
	s.log.Debug("namespace disconnected", "conn", sock.id, "nsp", nsp, "reason", reason)
}

// nspEvent handles a namespace's event (engineHost): rate limits as for
// "other" events, then the handler with a deadline.
func (s *Server) nspEvent(sock *Socket, ev *nspEvent) ([]byte, [][]byte) {
	if !sock.limits.allow(classOther) {
		s.metrics.handled("namespace", errRateLimited.Code, 0)
		s.strike(sock)
		return errorAck(errRateLimited), nil
	}
	n := s.namespace(ev.nsp)
	s.mu.Lock()
	h := n.handlers[ev.name]
	s.mu.Unlock()
	if h == nil {
		s.metrics.handled("unknown", errUnknownEvent.Code, 0)
		return errorAck(errUnknownEvent), nil
	}
	args, err := decodeArgs(ev.args, ev.att)
	if err != nil {
		return errorAck(invalid("invalid arguments")), nil
	}
	return s.handleNamespace(&NSConn{sock: sock, nsp: ev.nsp}, ev.name, args, h)
}

// handleNamespace runs one namespace handler call and builds its
// acknowledgement's arguments.
func (s *Server) handleNamespace(c *NSConn, event string, args []any, h NamespaceHandler) (body []byte, att [][]byte) {
	label := c.nsp + " " + event
	start := time.Now()
	code := "ok"
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panicked", "event", event, "nsp", c.nsp, "conn", c.sock.id, "panic", r, "stack", string(debug.Stack()))
			code, body, att = errInternal.Code, errorAck(errInternal), nil
		}
		s.metrics.handled(label, code, time.Since(start))
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Presence.OpTimeout)
	defer cancel()
	res, err := h(ctx, c, args)
	if err != nil {
		pe := protocolError(err)
		if pe == errInternal {
			s.log.Error("handler failed", "event", event, "nsp", c.nsp, "conn", c.sock.id, "err", err)
		}
		code = pe.Code
		return errorAck(pe), nil
	}
	return encodeArgs(res)
}
