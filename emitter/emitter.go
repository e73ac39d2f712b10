// Package emitter publishes messages to the sockets of an rtm deployment
// through Redis, from any Go program, without a socket of its own: what
// socket.io's redis-emitter is to Socket.IO. A backend uses it to notify a
// user on every device, push to a room, reach one socket, or disconnect a
// revoked user everywhere.
//
//	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", "127.0.0.1:6379") }}
//	em := emitter.New(pool, emitter.Options{}) // Prefix: the servers' PRESENCE_PREFIX
//	err := em.ToUser("alice").Emit(ctx, "notice", map[string]any{"text": "hello"})
//
// It writes the servers' wire format on their per-bucket channels (see the
// README's "Pub/sub"): give it the same Redis and the same PRESENCE_PREFIX
// as the servers. On a Redis Cluster, give it a pool whose connections
// follow MOVED redirections.
//
// Event names that belong to the protocol (presence:*, chat:*, topic:*,
// Socket.IO's connect and disconnect names) are refused: those come from
// the servers only.
package emitter

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/gomodule/redigo/redis"
)

// Pool gives the emitter Redis connections; *redis.Pool is one. The
// emitter closes each connection it gets.
type Pool interface {
	GetContext(ctx context.Context) (redis.Conn, error)
}

// Options configures an Emitter. Zero values take the defaults given.
type Options struct {
	// Prefix is the servers' PRESENCE_PREFIX. Zero value: "prs:".
	Prefix string
	// Publish is the command the servers listen with: "SPUBLISH" (shard
	// channels, Redis 7 and later) or "PUBLISH". Zero value: asked from
	// Redis (INFO server) at the first publish, as the servers do.
	Publish string
}

// Emitter publishes to an rtm deployment. It is safe for concurrent use.
type Emitter struct {
	pool    Pool
	prefix  string
	publish atomic.Value // string: the publish command, once known
}

// New returns an emitter publishing through pool.
func New(pool Pool, opts Options) *Emitter {
	e := &Emitter{pool: pool, prefix: opts.Prefix}
	if e.prefix == "" {
		e.prefix = "prs:"
	}
	if opts.Publish != "" {
		e.publish.Store(opts.Publish)
	}
	return e
}

// ErrInvalid is wrapped by the errors about bad names and data.
var ErrInvalid = errors.New("emitter: invalid")

func invalidf(what string) error {
	return errors.Join(ErrInvalid, errors.New("emitter: invalid "+what))
}

// Broadcast is one emit: targets, exceptions, then Emit or Disconnect. Each
// method returns a new value.
type Broadcast struct {
	e                         *Emitter
	rooms, exRooms, exSockets []string
	err                       error
}

// To starts a broadcast to rooms.
func (e *Emitter) To(rooms ...string) Broadcast { return Broadcast{e: e}.To(rooms...) }

// ToUser starts a broadcast to every socket of users.
func (e *Emitter) ToUser(users ...string) Broadcast { return Broadcast{e: e}.ToUser(users...) }

// ToSocket starts a broadcast to the sockets with these ids.
func (e *Emitter) ToSocket(ids ...string) Broadcast { return Broadcast{e: e}.ToSocket(ids...) }

func (b Broadcast) fail(err error) Broadcast {
	if b.err == nil {
		b.err = err
	}
	return b
}

// To adds rooms.
func (b Broadcast) To(rooms ...string) Broadcast {
	for _, r := range rooms {
		if !validID(r) {
			return b.fail(invalidf("room"))
		}
	}
	b.rooms = append(slices.Clip(b.rooms), rooms...)
	return b
}

// ToUser adds every socket of users.
func (b Broadcast) ToUser(users ...string) Broadcast {
	for _, u := range users {
		if !validID(u) {
			return b.fail(invalidf("userId"))
		}
		b.rooms = append(slices.Clip(b.rooms), "{u}"+u)
	}
	return b
}

// ToSocket adds the sockets with these ids.
func (b Broadcast) ToSocket(ids ...string) Broadcast {
	for _, id := range ids {
		if _, ok := sessionBucket(id); !ok {
			return b.fail(invalidf("socket id"))
		}
		b.rooms = append(slices.Clip(b.rooms), "{s}"+id)
	}
	return b
}

// Except leaves out the sockets in any of rooms.
func (b Broadcast) Except(rooms ...string) Broadcast {
	for _, r := range rooms {
		if !validID(r) {
			return b.fail(invalidf("room"))
		}
	}
	b.exRooms = append(slices.Clip(b.exRooms), rooms...)
	return b
}

// ExceptSocket leaves out the sockets with these ids.
func (b Broadcast) ExceptSocket(ids ...string) Broadcast {
	b.exSockets = append(slices.Clip(b.exSockets), ids...)
	return b
}

// reserved are Socket.IO's own event names; names in a module's namespace
// (before the first colon) are refused too.
var (
	reserved   = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
	namespaces = []string{"presence", "chat", "topic"}
)

// Emit sends event with data (marshalled as JSON; a json.RawMessage as it
// is; nil for no argument) to the targets' sockets on every node.
func (b Broadcast) Emit(ctx context.Context, event string, data any) error {
	ns, _, _ := strings.Cut(event, ":")
	if !validID(event) || slices.Contains(reserved, event) || strings.Contains(event, ":") && slices.Contains(namespaces, ns) {
		return invalidf("or reserved event name")
	}
	var raw json.RawMessage
	switch v := data.(type) {
	case nil:
	case json.RawMessage:
		if !json.Valid(v) {
			return invalidf("data: not JSON")
		}
		raw = v
	default:
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return errors.Join(invalidf("data"), err)
		}
	}
	return b.send(ctx, envelope{Event: event, Data: raw})
}

// Disconnect disconnects the targets' sockets on every node.
func (b Broadcast) Disconnect(ctx context.Context) error {
	return b.send(ctx, envelope{Kind: "disconnect"})
}

// envelope is the servers' message on a bucket channel (their hub.go).
type envelope struct {
	Room          string          `json:"r,omitempty"`
	Rooms         []string        `json:"rs,omitempty"`
	All           []string        `json:"a,omitempty"`
	ExceptRooms   []string        `json:"xr,omitempty"`
	ExceptSockets []string        `json:"xs,omitempty"`
	Event         string          `json:"e,omitempty"`
	Kind          string          `json:"k,omitempty"`
	Data          json.RawMessage `json:"d,omitempty"`
}

func (b Broadcast) send(ctx context.Context, env envelope) error {
	if b.err != nil {
		return b.err
	}
	if len(b.rooms) == 0 {
		return invalidf("broadcast: no target")
	}
	c, err := b.e.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	cmd, err := b.e.command(ctx, c)
	if err != nil {
		return err
	}
	all := slices.Compact(slices.Sorted(slices.Values(b.rooms)))
	env.ExceptRooms, env.ExceptSockets = b.exRooms, b.exSockets
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
		env.All = all
	}
	for _, k := range order {
		env.Room, env.Rooms = "", nil
		if rs := byBucket[k]; len(rs) == 1 && env.All == nil {
			env.Room = rs[0]
		} else {
			env.Rooms = rs
		}
		body, _ := json.Marshal(env) // strings and raw JSON: cannot fail
		channel := b.e.prefix + "{b" + strconv.Itoa(k) + "}:events"
		if _, err := redis.DoContext(c, ctx, cmd, channel, body); err != nil {
			return err
		}
	}
	return nil
}

// command returns the publish command the servers listen to: SPUBLISH on
// Redis 7 and later, PUBLISH before.
func (e *Emitter) command(ctx context.Context, c redis.Conn) (string, error) {
	if cmd, ok := e.publish.Load().(string); ok {
		return cmd, nil
	}
	info, err := redis.String(redis.DoContext(c, ctx, "INFO", "server"))
	if err != nil {
		return "", err
	}
	cmd := "PUBLISH"
	if _, v, ok := strings.Cut(info, "redis_version:"); ok {
		major, _, _ := strings.Cut(v, ".")
		if n, _ := strconv.Atoi(major); n >= 7 {
			cmd = "SPUBLISH"
		}
	}
	e.publish.Store(cmd)
	return cmd, nil
}

// The servers' routing rules (their presence.go and broadcast.go): 256
// buckets, FNV-1a of the room name, and a socket's own room in the bucket
// its session id carries in its last byte.
const roomBuckets = 256

func roomBucket(room string) int {
	if sid, ok := strings.CutPrefix(room, "{s}"); ok {
		if k, ok := sessionBucket(sid); ok {
			return k
		}
	}
	h := uint32(2166136261)
	for i := 0; i < len(room); i++ {
		h ^= uint32(room[i])
		h *= 16777619
	}
	return int(h % roomBuckets)
}

func sessionBucket(sid string) (int, bool) {
	if len(sid) != 22 {
		return 0, false
	}
	var b [16]byte
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(sid)); err != nil || n != 16 {
		return 0, false
	}
	return int(b[15]) % roomBuckets, true
}

// validID is the servers' id rule: 1 to 128 bytes of UTF-8, no control
// characters, no braces.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '{' || r == '}' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
