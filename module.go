package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

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

// ModuleContext is what a module gets to work with: the engine (the node's
// sockets), the Redis pool and the logger, plus Handle, which gives an event
// the acknowledgement contract of PROTOCOL.md, To, ToUser and ToSocket,
// which reach sockets on every node (Broadcast), and HandleAPI, an HTTP
// route for backends. Sockets join and leave rooms themselves
// (Socket.Join).
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

// To starts a cluster-wide emit to rooms (see Broadcast).
func (mc *ModuleContext) To(rooms ...string) Broadcast { return Broadcast{srv: mc.srv}.To(rooms...) }

// ToUser starts a cluster-wide emit to every socket of users (see
// Broadcast). A socket's user is its token's sub, or what SetUser gave it
// (presence sets the join's userId when authentication is off).
func (mc *ModuleContext) ToUser(users ...string) Broadcast {
	return Broadcast{srv: mc.srv}.ToUser(users...)
}

// ToSocket starts a cluster-wide emit to the sockets with these ids, on
// whichever node they are (see Broadcast).
func (mc *ModuleContext) ToSocket(ids ...string) Broadcast {
	return Broadcast{srv: mc.srv}.ToSocket(ids...)
}

// EmitToRoom sends event with payload to every socket in room, on every
// node: To(room).Emit(ctx, event, payload).
func (mc *ModuleContext) EmitToRoom(ctx context.Context, room, event string, payload any) error {
	return mc.To(room).Emit(ctx, event, payload)
}

// ReadAPIBody decodes a backend request's JSON object body into v (an empty
// body is {}): over MAX_MESSAGE_BYTES it answers 413, not such an object (or
// one with fields v does not have) 400, and reports false.
func (mc *ModuleContext) ReadAPIBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return mc.srv.readAPIBody(w, r, v)
}

// AnswerAPI runs publish with the node's operation deadline and answers the
// request: 200 {"ok":true}, 400 for an *Error about the input, 503 when
// Redis is unreachable or the node is busy, 500 otherwise (logged).
func (mc *ModuleContext) AnswerAPI(w http.ResponseWriter, r *http.Request, publish func(context.Context) error) {
	mc.srv.answerPublish(w, r, publish)
}

// WriteAPIError answers an HTTP error as the built-in API does:
// {"code":status,"message":msg}.
func WriteAPIError(w http.ResponseWriter, status int, msg string) { writeJSONError(w, status, msg) }

// ValidID reports whether s follows the id rules of PROTOCOL.md (roomId,
// userId, room names): 1 to 128 bytes of UTF-8, no control characters, no
// braces.
func ValidID(s string) bool { return validID(s) }

// HandleAPI adds an HTTP route for backends to the node (pattern as for
// http.ServeMux, "POST /v1/things/{id}"), guarded like the built-in API:
// requests without "Authorization: Bearer <API_TOKEN>" are answered 401
// before h runs. Call it from Register.
func (mc *ModuleContext) HandleAPI(pattern string, h http.HandlerFunc) {
	mc.srv.HandleExtra(pattern, mc.srv.apiGuard(h))
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

// Helpers for handlers: payloads checked as PROTOCOL.md requires (valid
// Unicode, no lone surrogates, the id rules) and the errors to answer.

// Payload is a client event's payload decoded as a JSON object, its values
// still raw.
type Payload map[string]json.RawMessage

// DecodePayload decodes a handler's payload. An absent payload or null is
// the empty object; anything but an object, or text that is not valid
// Unicode, is invalid_payload.
func DecodePayload(raw json.RawMessage) (Payload, error) {
	o, err := decodeObject(raw)
	return Payload(o), err
}

// ID reads the required field key as an id: a string of 1 to 128 bytes
// with no control characters and no braces (PROTOCOL.md), else
// invalid_payload naming the field.
func (p Payload) ID(key string) (string, error) { return object(p).id(key) }

// InvalidPayload returns the invalid_payload error with msg.
func InvalidPayload(msg string) *Error { return invalid(msg) }

// Forbidden returns the forbidden error with msg.
func Forbidden(msg string) *Error { return forbidden(msg) }
