package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// Broadcast is a cluster-wide emit, Socket.IO's broadcast operator in Go:
// built from ModuleContext.To, ToUser or ToSocket, narrowed with Except and
// ExceptSocket, then applied once with Emit or Disconnect. Every socket on
// any node that is in at least one target (a room, a user's room, a
// socket) and in none of the excepted rooms receives the message once.
//
// A Broadcast is a value: each method returns a new one, so a base can be
// kept and reused. The first invalid name it is given makes Emit and
// Disconnect answer invalid_payload.
//
// Order: messages published to one room arrive at each of its sockets in
// the order they were published. A message to several rooms of different
// buckets reaches a socket through the bucket of the first of those rooms
// (in sorted order) that the socket is in, so it is ordered with that
// room's messages.
type Broadcast struct {
	srv           *Server
	rooms         []string
	exceptRooms   []string
	exceptSockets []string
	recorded      bool // see Recorded (history.go)
	err           error
}

// Implicit rooms: every connected socket is in its own room, and a socket
// with a user (Socket.User) in its user's room. Their names start with a
// brace, which room ids cannot contain, so no module room collides.
const (
	socketRoomPrefix = "{s}"
	userRoomPrefix   = "{u}"
)

func socketRoom(sid string) string  { return socketRoomPrefix + sid }
func userRoom(userID string) string { return userRoomPrefix + userID }
func implicitRoom(room string) bool { return strings.HasPrefix(room, "{") }

// fail records the first invalid name given.
func (b Broadcast) fail(err error) Broadcast {
	if b.err == nil {
		b.err = err
	}
	return b
}

// To adds rooms to the targets.
func (b Broadcast) To(rooms ...string) Broadcast {
	for _, r := range rooms {
		if !validID(r) {
			return b.fail(invalid("invalid room"))
		}
	}
	b.rooms = append(slices.Clip(b.rooms), rooms...)
	return b
}

// ToUser adds every socket of each user, on any node, to the targets.
func (b Broadcast) ToUser(users ...string) Broadcast {
	for _, u := range users {
		if !validID(u) {
			return b.fail(invalid("invalid userId"))
		}
		b.rooms = append(slices.Clip(b.rooms), userRoom(u))
	}
	return b
}

// ToSocket adds the sockets with these ids, on any node, to the targets.
func (b Broadcast) ToSocket(ids ...string) Broadcast {
	for _, id := range ids {
		if _, ok := sessionBucket(id); !ok {
			return b.fail(invalid("invalid socket id"))
		}
		b.rooms = append(slices.Clip(b.rooms), socketRoom(id))
	}
	return b
}

// Except leaves out the sockets in any of rooms.
func (b Broadcast) Except(rooms ...string) Broadcast {
	for _, r := range rooms {
		if !validID(r) {
			return b.fail(invalid("invalid room"))
		}
	}
	b.exceptRooms = append(slices.Clip(b.exceptRooms), rooms...)
	return b
}

// ExceptSocket leaves out the sockets with these ids (the sender, say).
func (b Broadcast) ExceptSocket(ids ...string) Broadcast {
	b.exceptSockets = append(slices.Clip(b.exceptSockets), ids...)
	return b
}

// Emit sends event with data to the targets. data is marshalled as JSON (a
// json.RawMessage is taken as it is and must be valid); nil sends the
// event without an argument. It returns once Redis took the message: an
// error means no node got it (Redis trouble answers unavailable).
func (b Broadcast) Emit(ctx context.Context, event string, data any) error {
	if !validEventName(event) {
		return invalid("invalid event name")
	}
	raw, err := marshalData(data)
	if err != nil {
		return err
	}
	if b.recorded {
		return b.emitRecorded(ctx, event, raw)
	}
	return b.publish(ctx, envelope{Event: event, Data: raw})
}

// Disconnect disconnects the targets, on every node (a revoked user, say).
func (b Broadcast) Disconnect(ctx context.Context) error {
	return b.publish(ctx, envelope{Kind: "disconnect"})
}

// errNoTargets answers an Emit or Disconnect with no target.
var errNoTargets = invalid("no target: use To, ToUser or ToSocket")

// publish sends the message to the events channel of each bucket its
// targets fall in.
func (b Broadcast) publish(ctx context.Context, e envelope) error {
	if b.err != nil {
		return b.err
	}
	if len(b.rooms) == 0 {
		return errNoTargets
	}
	msgs := bucketEnvelopes(b.rooms, b.exceptRooms, b.exceptSockets, e)
	p := b.srv.presence
	c, err := b.srv.pool.GetContext(ctx)
	if err != nil {
		return p.failure(err) // a timeout on a node that is behind is overload
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err = redis.DoContext(c, ctx, p.publishCommand(), p.bucketChannel(m.bucket), m.body); err != nil {
			return p.failure(err)
		}
	}
	p.answered()
	return nil
}

// bucketMessage is one bucket's copy of a broadcast.
type bucketMessage struct {
	bucket int
	body   []byte
}

// bucketEnvelopes encodes a message to rooms (minus exceptRooms and
// exceptSockets) once for each bucket the rooms fall in: r alone for one
// room, rs for several rooms of one bucket, and rs plus a (every room,
// sorted) when they span buckets, so that a receiving node can tell which
// bucket's copy a socket in several of them gets (hub.ownsLocked).
func bucketEnvelopes(rooms, exceptRooms, exceptSockets []string, e envelope) []bucketMessage {
	all := slices.Compact(slices.Sorted(slices.Values(rooms)))
	e.ExceptRooms, e.ExceptSockets = exceptRooms, exceptSockets
	var order []int
	byBucket := make(map[int][]string)
	for _, r := range all {
		k := roomBucket(r)
		if byBucket[k] == nil {
			order = append(order, k)
		}
		byBucket[k] = append(byBucket[k], r)
	}
	if len(order) > 1 {
		e.All = all
	}
	out := make([]bucketMessage, 0, len(order))
	for _, k := range order {
		e.Room, e.Rooms = "", nil
		if rs := byBucket[k]; len(rs) == 1 && e.All == nil {
			e.Room = rs[0]
		} else {
			e.Rooms = rs
		}
		body, _ := json.Marshal(e) // strings and raw JSON only: cannot fail
		out = append(out, bucketMessage{bucket: k, body: body})
	}
	return out
}

// marshalData encodes an event's argument: nil is none, a json.RawMessage
// is checked (empty is none), anything else is marshalled.
func marshalData(data any) (json.RawMessage, error) {
	switch v := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if len(v) == 0 {
			return nil, nil
		}
		if !json.Valid(v) {
			return nil, invalid("data is not valid JSON")
		}
		return v, nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, errors.Join(invalid("data cannot be encoded as JSON"), err)
	}
	return raw, nil
}

// validEventName reports whether name may be an event's name: the id rules
// (1 to 128 bytes of valid UTF-8, no control characters, no braces).
func validEventName(name string) bool { return validID(name) }

// Session ids double as routing addresses: the last of their 16 random
// bytes is replaced by the node's home bucket, so a message to a socket
// goes to the one bucket its node listens to for all its sockets' own
// rooms, and any node (or the Go emitter) can tell that bucket from the
// id alone. 120 bits stay random.
func newSessionID(bucket int) string {
	var b [16]byte
	_, _ = rand.Read(b[:15]) // crypto/rand.Read never fails
	b[15] = byte(bucket)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionBucket returns the bucket carried by a session id, and whether
// sid has the shape of one.
func sessionBucket(sid string) (int, bool) {
	if len(sid) != idLen {
		return 0, false
	}
	var b [16]byte
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(sid)); err != nil || n != 16 {
		return 0, false
	}
	return int(b[15]) % roomBuckets, true
}
