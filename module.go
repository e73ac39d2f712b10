package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Module is a feature attached to the server: presence is one, chat.go is
// the example to copy. Modules are added with Server.Use before Run;
// Register is called once, from Use, and attaches the module's event
// handlers through the ModuleContext.
//
// A module may also implement ConnectionHandler (told of every socket),
// Runner (a background loop for the server's lifetime) and Shutdowner
// (cleanup on shutdown, run in reverse registration order).
type Module interface {
	Name() string
	Register(mc *ModuleContext) error
}

// ConnectionHandler is implemented by modules that want to know about every
// socket. OnConnect runs before the socket's first event is handled;
// OnDisconnect runs once, when it is gone. Neither may block for long, and
// both may Send to the socket.
type ConnectionHandler interface {
	OnConnect(s *Socket)
	OnDisconnect(s *Socket)
}

// Runner is implemented by modules with a background loop. The server runs
// Run on its own goroutine from Run until shutdown, when ctx is cancelled;
// Run must return soon after.
type Runner interface {
	Run(ctx context.Context)
}

// Shutdowner is implemented by modules that clean up on shutdown. Shutdown
// runs after every socket is closed and every Runner has returned, before
// the Redis pool is closed; it must finish within ctx.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// HandlerFunc handles one client event. payload is the event's first
// argument as raw JSON (nil when there was none). It returns the fields of a
// successful acknowledgement (a JSON object, or a value that marshals to one,
// or nil for none) or an error; *Error values reach the client as they are,
// Redis trouble as unavailable and anything else as internal.
type HandlerFunc func(ctx context.Context, s *Socket, payload json.RawMessage) (any, error)

// ModuleContext is what a module gets to work with: direct access to the
// engine (its sockets, each with Send; local rooms through the hub), the
// Redis pool and the logger, plus Handle, which gives an event the
// acknowledgement contract of PROTOCOL.md, and EmitToRoom, which reaches a
// room's sockets on every node.
type ModuleContext struct {
	Engine *Engine
	Redis  *redis.Pool
	Logger *slog.Logger

	srv     *Server
	hub     *hub
	metrics *metrics
}

// Go runs f on a goroutine that the server waits for on shutdown.
func (mc *ModuleContext) Go(f func()) { mc.srv.spawn(f) }

// EmitToRoom sends event with payload to every socket in room, on every node,
// through the Redis events channel. Within a room, messages emitted by one
// caller arrive in the order they were emitted.
func (mc *ModuleContext) EmitToRoom(ctx context.Context, room, event string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	env, err := json.Marshal(envelope{Room: room, Event: event, Data: data})
	if err != nil {
		return err
	}
	p := mc.srv.presence
	c, err := mc.Redis.GetContext(ctx)
	if err != nil {
		return p.failure(err) // a timeout on a node that is behind is overload
	}
	defer c.Close()
	if _, err = redis.DoContext(c, ctx, p.publishCommand(), p.bucketChannel(roomBucket(room)), env); err != nil {
		return p.failure(err)
	}
	p.answered()
	return nil
}

// Handle attaches h to event. The handler takes its payload as raw JSON,
// runs with a deadline, is rate limited by the event's class, never panics
// out, and always answers an acknowledgement that asked for one. Call it
// from Register.
func (mc *ModuleContext) Handle(event string, h HandlerFunc) {
	mc.srv.mu.Lock()
	defer mc.srv.mu.Unlock()
	mc.srv.handlers[event] = h
}

// Rate-limit strikes: a socket refused more than maxStrikes times within
// strikeWindow is not slowing down and is disconnected.
const (
	maxStrikes   = 100
	strikeWindow = 10 * time.Second
)

// errUnknownEvent answers an event that no module handles.
var errUnknownEvent = invalid("unknown event")

// event handles one client event (engineHost): it looks up the handler,
// applies the rate limits (an unknown event counts as "other") and builds
// the acknowledgement.
func (s *Server) event(sock *Socket, name string, payload json.RawMessage, _ bool) json.RawMessage {
	s.mu.Lock()
	h := s.handlers[name]
	s.mu.Unlock()
	class := eventClass(name, payload)
	if !sock.limits.allow(class) {
		s.metrics.handled(metricEvent(name, h), errRateLimited.Code, 0)
		s.strike(sock)
		return errorAck(errRateLimited)
	}
	if h == nil {
		s.metrics.handled("unknown", errUnknownEvent.Code, 0)
		return errorAck(errUnknownEvent)
	}
	// A node whose sockets do not take their events as fast as rooms
	// produce them sheds what produces more (patches, chat) instead of
	// queueing without bound; it is not the sender's fault: no strike.
	if (class == classPatch || class == classChat) && s.eng.backlogged() {
		s.metrics.handled(name, errBusy.Code, 0)
		s.metrics.shed()
		return errorAck(errBusy)
	}
	return s.handle(sock, name, payload, h)
}

// metricEvent is the event label for metrics: client-chosen names of
// unknown events would grow the label set without bound.
func metricEvent(name string, h HandlerFunc) string {
	if h == nil {
		return "unknown"
	}
	return name
}

// strike counts a rate-limit refusal and disconnects a socket that keeps
// exceeding its limits.
func (s *Server) strike(sock *Socket) {
	now := time.Now()
	sock.wmu.Lock()
	if now.Sub(sock.strikeAt) > strikeWindow {
		sock.strikes, sock.strikeAt = 0, now
	}
	sock.strikes++
	over := sock.strikes > maxStrikes
	sock.wmu.Unlock()
	if over {
		s.log.Warn("disconnecting socket: it keeps exceeding its rate limits", "conn", sock.id, "ip", sock.ip)
		sock.close("rate limits exceeded")
	}
}

// handle runs one handler call and builds its acknowledgement.
func (s *Server) handle(sock *Socket, event string, payload json.RawMessage, h HandlerFunc) (ack json.RawMessage) {
	start := time.Now()
	code := "ok"
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panicked", "event", event, "conn", sock.id, "panic", r, "stack", string(debug.Stack()))
			code, ack = errInternal.Code, errorAck(errInternal)
		}
		s.metrics.handled(event, code, time.Since(start))
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Presence.OpTimeout)
	defer cancel()
	res, err := h(ctx, sock, payload)
	if err != nil {
		pe := protocolError(err)
		switch pe {
		case errInternal:
			s.log.Error("handler failed", "event", event, "conn", sock.id, "err", err)
		case errUnavailable:
			s.log.Warn("redis unavailable", "event", event, "conn", sock.id, "err", err)
		}
		code = pe.Code
		return errorAck(pe)
	}
	return okAck(res)
}

// okAck builds {"ok":true, ...fields}.
func okAck(res any) json.RawMessage {
	var body []byte
	switch v := res.(type) {
	case nil:
		return json.RawMessage(`{"ok":true}`)
	case json.RawMessage:
		body = v
	default:
		body = canonicalJSON(v)
	}
	if len(body) < 2 || body[0] != '{' {
		return errorAck(errInternal)
	}
	if string(body) == "{}" {
		return json.RawMessage(`{"ok":true}`)
	}
	out := make([]byte, 0, len(body)+10)
	out = append(out, `{"ok":true,`...)
	out = append(out, body[1:]...)
	return out
}

// errorAck builds {"ok":false,"error":{"code":...,"message":...}}.
func errorAck(e *Error) json.RawMessage {
	return canonicalJSON(map[string]any{"ok": false, "error": e})
}
