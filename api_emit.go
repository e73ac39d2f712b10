package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
)

// emitRequest is the body of POST /v1/{rooms,users,sockets}/{id}/emit.
type emitRequest struct {
	Event         string          `json:"event"`
	Data          json.RawMessage `json:"data"`
	Except        []string        `json:"except"`        // rooms whose sockets are left out
	ExceptSockets []string        `json:"exceptSockets"` // socket ids left out
}

// serveEmit answers POST /v1/{kind}/{id}/emit: the event, with data as its
// one argument, to every socket of the room, user or socket on any node.
// 200 {"ok":true} once Redis took it; 400 for a bad id, event name or
// body; 413 for a body over MaxMessageBytes; 503 when Redis is unreachable.
func (s *Server) serveEmit(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req emitRequest
		if !s.readAPIBody(w, r, &req) {
			return
		}
		if req.Event == "" {
			writeJSONError(w, http.StatusBadRequest, "event is required")
			return
		}
		if !validEventName(req.Event) || s.reservedEvent(req.Event) {
			writeJSONError(w, http.StatusBadRequest, "invalid or reserved event name")
			return
		}
		var data any
		if len(req.Data) > 0 {
			data = req.Data
		}
		b := s.broadcastTo(kind, r.PathValue("id")).Except(req.Except...).ExceptSocket(req.ExceptSockets...)
		s.answerPublish(w, r, func(ctx context.Context) error { return b.Emit(ctx, req.Event, data) })
	}
}

// serveDisconnect answers POST /v1/{kind}/{id}/disconnect: every socket of
// the room, user or socket is disconnected, on any node.
func (s *Server) serveDisconnect(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct{}
		if !s.readAPIBody(w, r, &req) {
			return
		}
		b := s.broadcastTo(kind, r.PathValue("id"))
		s.answerPublish(w, r, b.Disconnect)
	}
}

// broadcastTo returns the broadcast to the room, user or socket id.
func (s *Server) broadcastTo(kind, id string) Broadcast {
	b := Broadcast{srv: s}
	switch kind {
	case "users":
		return b.ToUser(id)
	case "sockets":
		return b.ToSocket(id)
	}
	return b.To(id)
}

// readAPIBody decodes a JSON object body into v (an empty body is {}),
// answering 413 when it is over MaxMessageBytes and 400 when it is not
// such an object or has unknown fields.
func (s *Server) readAPIBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.MaxMessageBytes)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSONError(w, http.StatusRequestEntityTooLarge, "body over the message limit")
		return false
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, "unreadable body")
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() || !strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
		writeJSONError(w, http.StatusBadRequest, "the body must be a JSON object as documented")
		return false
	}
	return true
}

// answerPublish runs publish within the handler deadline and answers its
// outcome.
func (s *Server) answerPublish(w http.ResponseWriter, r *http.Request, publish func(context.Context) error) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Presence.OpTimeout)
	defer cancel()
	err := publish(ctx)
	if err == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
		return
	}
	switch pe := protocolError(err); pe {
	case errUnavailable, errBusy:
		writeJSONError(w, http.StatusServiceUnavailable, pe.Message)
	case errInternal:
		s.log.Error("emit API failed", "path", r.URL.Path, "err", err)
		writeJSONError(w, http.StatusInternalServerError, pe.Message)
	default:
		writeJSONError(w, http.StatusBadRequest, pe.Message)
	}
}

// socketIOReserved are the event names Socket.IO clients use for
// themselves; a server event of that name would be taken for them.
var socketIOReserved = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}

// reservedEvent reports whether name belongs to the protocol: Socket.IO's
// own names, and every name in a module's namespace ("presence:event",
// "chat:message", "topic:message": the part before the first colon is a
// registered module's name). Backends cannot send those.
func (s *Server) reservedEvent(name string) bool {
	if slices.Contains(socketIOReserved, name) {
		return true
	}
	ns, _, ok := strings.Cut(name, ":")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.modules {
		if m.Name() == ns {
			return true
		}
	}
	return false
}
