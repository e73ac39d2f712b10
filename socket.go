package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Socket is what modules see of one client connection: its identity (id,
// protocol generation, handshake, verified claims, user), its rooms, data
// that modules keep on it, and Send and Close. The engine's session under it
// (engine_session.go) holds the transport, the outbound queue and the
// liveness timer; modules never touch those.
//
// A Socket is created with its session at the handshake and told to modules
// between connect and disconnect (ConnectionHandler). Its methods are safe
// for concurrent use.
type Socket struct {
	sess  *session
	id    string // the Engine.IO session id: crypto-random, a bearer secret
	proto int    // 3 or 4
	hs    Handshake

	// Set by the server before connect, read-only after.
	hub    *hub
	claims *claims // nil when auth is off
	limits *limits

	shutdown atomic.Bool // the node closed the socket on shutdown

	mu       sync.Mutex // guards the following fields
	user     string     // the routing user: the token's sub, or what a module set
	data     map[any]any
	strikes  int // rate-limit refusals in the current window
	strikeAt time.Time
}

// Handshake is what the client sent when it opened its session.
type Handshake struct {
	RemoteAddr string      // the TCP peer, host:port
	Header     http.Header // the handshake request's headers (read only: shared)
	Query      url.Values  // its query parameters
	Time       time.Time   // when it arrived
}

func newModuleSocket(sess *session, r *http.Request) *Socket {
	return &Socket{sess: sess, id: sess.id, proto: sess.proto, hs: Handshake{
		// The request's own header map, not a copy: net/http made it for
		// this request alone and keeps nothing of it once the handshake is
		// answered; a copy would cost each connection about 1 KiB more.
		RemoteAddr: r.RemoteAddr, Header: r.Header, Query: r.URL.Query(), Time: sess.created,
	}}
}

// ID returns the socket's id (its Engine.IO session id). It addresses the
// socket from any node (ModuleContext.ToSocket, POST /v1/sockets/{id}/emit);
// it is a bearer secret of its client, so hand it only to trusted backends.
func (s *Socket) ID() string { return s.id }

// Protocol returns the socket's protocol generation: 3 (socket.io-client
// 2.x) or 4 (3.x and 4.x).
func (s *Socket) Protocol() int { return s.proto }

// Handshake returns what the client sent when it connected.
func (s *Socket) Handshake() Handshake { return s.hs }

// IP returns the client's IP address (the TCP peer's).
func (s *Socket) IP() string { return s.sess.ip }

// Claims returns the verified token's claims, or nil when authentication is
// off (JWT_SECRET unset).
func (s *Socket) Claims() *Claims {
	if s.claims == nil {
		return nil
	}
	return s.claims.public()
}

// User returns the socket's user id: the token's sub when authentication is
// on, otherwise what SetUser recorded (the presence join's userId), or "".
func (s *Socket) User() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user
}

// errUserFixed refuses SetUser when the user comes from a verified token.
var errUserFixed = errors.New("socket: the user is the token's subject")

// SetUser makes id the socket's user: the socket joins the user's room (see
// ModuleContext.ToUser) and leaves the previous user's; "" leaves it. It
// returns once the node hears the user's room (as Join). With
// authentication on, the user is the token's sub and cannot be changed.
func (s *Socket) SetUser(ctx context.Context, id string) error {
	if s.claims != nil {
		return errUserFixed
	}
	if id != "" && !validID(id) {
		return invalid("invalid userId")
	}
	s.mu.Lock()
	old := s.user
	s.user = id
	s.mu.Unlock()
	if old == id || s.hub == nil {
		return nil
	}
	if old != "" {
		s.hub.leave(s, userRoom(old))
	}
	if id == "" {
		return nil
	}
	s.hub.join(s, userRoom(id))
	return s.hub.ready(ctx, userRoom(id))
}

// Set stores value under key on the socket for as long as it lives; a nil
// value deletes it. Keys compare like map keys: use an unexported type of
// your module's, as with context values.
func (s *Socket) Set(key, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == nil {
		delete(s.data, key)
		return
	}
	if s.data == nil {
		s.data = make(map[any]any)
	}
	s.data[key] = value
}

// Value returns what Set stored under key, or nil.
func (s *Socket) Value(key any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data[key]
}

// errNoRooms answers Join on a socket of a bare engine (no server).
var errNoRooms = errors.New("socket: no rooms without a server")

// Join adds the socket to room: messages sent to the room from any node
// (ModuleContext.To, the HTTP emit endpoint) reach it until it leaves or
// disconnects. It returns once the node hears the room, so that everything
// published after it returns reaches the socket; if ctx ends first (Redis
// unreachable), it returns the error and the socket stays in the room,
// hearing it once the node does. room follows the id rules of PROTOCOL.md;
// joining twice is harmless; joining after the socket is gone does
// nothing.
func (s *Socket) Join(ctx context.Context, room string) error {
	if !validID(room) {
		return invalid("invalid room")
	}
	if s.hub == nil {
		return errNoRooms
	}
	s.hub.join(s, room)
	return s.hub.ready(ctx, room)
}

// Leave removes the socket from room. It reports whether it was in it. A
// presence room joined with presence:join is left with presence:leave, not
// here.
func (s *Socket) Leave(room string) bool {
	if s.hub == nil || !validID(room) {
		return false
	}
	return s.hub.leave(s, room)
}

// Rooms returns the rooms the socket is in on this node: those it joined
// and its presence room, in no particular order; the implicit rooms of its
// user and of itself are not listed.
func (s *Socket) Rooms() []string {
	if s.hub == nil {
		return nil
	}
	return s.hub.roomsOf(s)
}

// Send queues event with data (a JSON value, or nil for none) for this
// socket's client. It never blocks. It reports false when the socket is
// gone or was just disconnected for not reading.
func (s *Socket) Send(event string, data json.RawMessage) bool {
	return s.sess.sendFrame(eventFrame(event, data))
}

// Close disconnects the socket as Socket.IO servers do: its client is
// sent a namespace disconnect, which official clients take as final (no
// automatic reconnection), and the session closes once it is sent.
func (s *Socket) Close() {
	if !s.sess.sendLast([]byte("41")) {
		s.sess.close("server close")
	}
}

// Done returns a channel closed when the socket is gone.
func (s *Socket) Done() <-chan struct{} { return s.sess.done }

// sendFrame queues a ready-made Engine.IO packet, shared with other sockets.
func (s *Socket) sendFrame(frame []byte) bool { return s.sess.sendFrame(frame) }

// close ends the socket's session with reason.
func (s *Socket) close(reason string) { s.sess.close(reason) }

// strike counts a rate-limit refusal and reports whether the socket has
// now exceeded maxStrikes within strikeWindow.
func (s *Socket) strike(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.strikeAt) > strikeWindow {
		s.strikes, s.strikeAt = 0, now
	}
	s.strikes++
	return s.strikes > maxStrikes
}
