package main

import (
	"context"
	"encoding/json"
	"runtime/debug"
	"time"
)

// The dispatcher: every client event goes through Server.event, which finds
// its module's handler (ModuleContext.Handle), applies the socket's rate
// limits and the node's overload shedding, runs the handler with a deadline
// and builds the acknowledgement of PROTOCOL.md.

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
	if sock.strike(time.Now()) {
		s.log.Warn("disconnecting socket: it keeps exceeding its rate limits", "conn", sock.id, "ip", sock.IP())
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
