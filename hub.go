package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
)

// hub is the node's rooms: which local sockets are in which room, and the
// delivery of what Redis pub/sub brings to them. A socket is in a room when
// a module joined it (Socket.Join), when it is presence-joined to it, and in
// two implicit rooms: its own (socketRoom) and its user's (userRoom). The
// hub keeps both directions (room -> sockets, socket -> rooms), so leaving
// every room on disconnect costs the socket's rooms, not the node's.
//
// The hub is the only consumer of the subscriptions (pubsub.go), whose
// receivers call deliver for each message of a bucket in the order Redis
// published them; deliver only queues (Socket.Send never blocks), so the
// order in which a room's messages were published is the order in which
// every local socket receives them. The first room a room gets a local
// socket in its bucket subscribes the node to that bucket; the last one
// gone releases it.
//
// Presence events (those with a seq) reach only the sockets presence-joined
// to their room, within each one's window: a socket joining presence is
// added as a pending membership before its join script runs, so no event
// published after the join can slip past it. While pending it buffers what
// arrives; when the join returns, activate releases the buffered events from
// the join's seq on and drops the earlier ones.
//
// The hub also remembers the last seq it delivered per room, so that after a
// gap in the subscription the node can tell which rooms moved while it was
// deaf (see resyncRoom), and the last seq delivered to each membership: an
// event whose seq does not exceed it means the room's history started over
// (Redis lost its data), and the socket's connection is gone with it.
type hub struct {
	log *slog.Logger
	// subs, when set, is told when a room gets its first local member and
	// when it loses its last, so that the node subscribes only to the
	// buckets of its rooms (pubsub.go).
	subs *subscriptions
	// onGone, when set, is told that s's presence connection connID in room
	// is gone with the room's lost history (the presence module clears it).
	// It runs under the hub's lock.
	onGone func(s *Socket, room, connID string)

	mu     sync.Mutex      // guards the following fields
	dirty  map[string]bool // rooms with batched or counted events to flush
	rooms  map[string]map[*Socket]*membership
	joined map[*Socket]map[string]*membership // the same memberships, by socket
	seqs   map[string]int64                   // room -> last seq delivered; only rooms in rooms
	// gaps holds, per room, what the hub had delivered when the room's
	// subscription was last lost, until a resync settles it.
	gaps   map[string]gapMark
	gapGen uint64 // counts markGap calls
	// tick counts flushes; maxCountTicks caps countEvery (runBatches sets
	// it from the tick; 0 until then: every tick); slots numbers presence
	// memberships (membership.slot).
	tick, slots   uint64
	maxCountTicks int
}

// gapMark is where a room stood when its subscription was lost.
type gapMark struct {
	seq  int64  // the last seq delivered before the gap
	seen bool   // whether any seq was delivered before it
	gen  uint64 // which gap (hub.gapGen when it was marked)
}

// membership is a socket's place in a room: joined by a module (or
// implicitly), presence-joined, or both. The presence fields are zero
// unless presence is set.
type membership struct {
	joined   bool // through Socket.Join, or an implicit room
	presence bool // presence-joined: the room's presence events, in its window
	mode     eventMode
	batch    []*envelope // modeBatched: events for the next flush
	countEv  *envelope   // modeCount: the last event since the last flush
	slot     uint64      // spreads the counts of a big room over ticks (hub_batch.go)
	connID   string
	pending  bool
	buf      []envelope // events received while pending
	minSeq   int64      // presence events with a lower seq are not for this socket
	maxSeq   int64      // when > 0: the socket's leave; later events are not for it
	lastSeq  int64      // the last presence event's seq delivered to the socket
	// after and replayed come from a join or sync with history (history.go):
	// recorded module messages up to after are not for the socket, and
	// presence events within replayed were replayed to it.
	after    position
	replayed window
}

// eventMode is how a presence member receives its room's events
// (presence:join's events option, PROTOCOL.md revision 3).
type eventMode uint8

const (
	modeEach    eventMode = iota // one presence:event per event, at once
	modeBatched                  // one presence:batch per flush with the events since the last
	modeCount                    // one presence:count per flush when the room changed
	modeNone                     // none: present without listening
)

// maxPendingBuffer bounds what a pending membership holds; a join script
// outruns it only when the room is extremely busy, and then the socket's
// client recovers through presence:sync after seeing a gap in seq.
const maxPendingBuffer = 4096

// envelope is a message on a bucket's events channel. Presence events carry
// their room (r), seq (q), type (t) and connId (c); a takeover notice has
// k="takeover", c and the new owner's sid o. A module message carries its
// event (e) and data (d) and its target rooms: r alone, or rs, the targets
// in this bucket, and a, every target in sorted order when they span
// several buckets (see ownsLocked); xr and xs are the rooms and socket ids
// excepted. k="disconnect" disconnects the targets instead. A recorded
// module message (Broadcast.Recorded) has its position in hq and hs.
type envelope struct {
	Room          string          `json:"r,omitempty"`
	Rooms         []string        `json:"rs,omitempty"`
	All           []string        `json:"a,omitempty"`
	ExceptRooms   []string        `json:"xr,omitempty"`
	ExceptSockets []string        `json:"xs,omitempty"`
	Event         string          `json:"e,omitempty"`
	Seq           int64           `json:"q,omitempty"`
	Type          string          `json:"t,omitempty"`
	Conn          string          `json:"c,omitempty"`
	Kind          string          `json:"k,omitempty"`
	Owner         string          `json:"o,omitempty"`
	HistSeq       int64           `json:"hq,omitempty"` // a recorded module message's position (history.go)
	HistSub       int64           `json:"hs,omitempty"`
	Data          json.RawMessage `json:"d,omitempty"`

	frame []byte // the Engine.IO message for the sockets: encoded once
}

// targets returns the message's target rooms in this bucket.
func (e *envelope) targets() []string {
	if len(e.Rooms) > 0 {
		return e.Rooms
	}
	return []string{e.Room}
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log, rooms: make(map[string]map[*Socket]*membership), dirty: make(map[string]bool),
		joined: make(map[*Socket]map[string]*membership), seqs: make(map[string]int64),
		gaps: make(map[string]gapMark)}
}

// entryLocked returns s's membership of room, creating an empty one (and
// the room) when there is none.
func (h *hub) entryLocked(s *Socket, room string) *membership {
	ms := h.rooms[room]
	if ms == nil {
		ms = make(map[*Socket]*membership)
		h.rooms[room] = ms
		if h.subs != nil {
			h.subs.acquire(roomBucket(room))
		}
	}
	m := ms[s]
	if m == nil {
		m = &membership{}
		ms[s] = m
		byRoom := h.joined[s]
		if byRoom == nil {
			byRoom = make(map[string]*membership)
			h.joined[s] = byRoom
		}
		byRoom[room] = m
	}
	return m
}

// join adds s to room (Socket.Join). A socket that is gone joins nothing:
// its disconnect has dropped it, or will (the session is marked gone before
// the host is told).
func (h *hub) join(s *Socket, room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.sess.isGone() {
		return
	}
	h.entryLocked(s, room).joined = true
}

// leave takes s out of room as Socket.Join put it there, and reports
// whether it was; a presence membership of the room stays.
func (h *hub) leave(s *Socket, room string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room][s]
	if m == nil || !m.joined {
		return false
	}
	m.joined = false
	if !m.presence {
		h.removeLocked(s, room)
	}
	return true
}

// roomsOf returns the named rooms s is in (not the implicit ones).
func (h *hub) roomsOf(s *Socket) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.joined[s]))
	for room := range h.joined[s] {
		if !implicitRoom(room) {
			out = append(out, room)
		}
	}
	return out
}

// subscribe makes s's membership of room a pending presence membership
// receiving its events in mode, replacing any presence membership it had.
func (h *hub) subscribe(s *Socket, room string, mode eventMode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.entryLocked(s, room)
	h.slots++
	*m = membership{joined: m.joined, presence: true, pending: true, mode: mode, slot: h.slots}
}

// ready returns once the node hears room's events (see subscriptions.wait).
func (h *hub) ready(ctx context.Context, room string) error {
	if h.subs == nil {
		return nil
	}
	return h.subs.wait(ctx, roomBucket(room))
}

// activate makes s's pending membership of room live for connID: buffered
// presence events from minSeq on are delivered, earlier ones dropped.
func (h *hub) activate(s *Socket, room, connID string, minSeq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room][s]
	if m == nil || !m.presence {
		return
	}
	m.connID, m.minSeq, m.pending = connID, minSeq, false
	buf := m.buf
	m.buf = nil
	for i := range buf {
		h.deliverLocked(room, s, m, &buf[i])
	}
}

// endAt records that s's presence membership of room ends with the event of
// seq: it ends when that event (or a later one) is delivered.
func (h *hub) endAt(s *Socket, room string, seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.rooms[room][s]; m != nil && m.presence {
		m.maxSeq = seq
	}
}

// unsubscribe ends s's presence membership of room at once.
func (h *hub) unsubscribe(s *Socket, room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endPresenceLocked(s, room)
}

// drop removes s from every room; the server calls it when the socket is
// gone.
func (h *hub) drop(s *Socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for room := range h.joined[s] {
		h.removeLocked(s, room)
	}
}

// endPresenceLocked ends s's presence membership of room; s stays in the
// room if a module joined it there.
func (h *hub) endPresenceLocked(s *Socket, room string) {
	m := h.rooms[room][s]
	if m == nil {
		return
	}
	h.flushLocked(room, s, m, nil) // what it was owed up to its end
	if m.joined {
		*m = membership{joined: true}
		return
	}
	h.removeLocked(s, room)
}

// removeLocked takes s out of room altogether.
func (h *hub) removeLocked(s *Socket, room string) {
	ms := h.rooms[room]
	if _, ok := ms[s]; !ok {
		return
	}
	delete(ms, s)
	if byRoom := h.joined[s]; byRoom != nil {
		delete(byRoom, room)
		if len(byRoom) == 0 {
			delete(h.joined, s)
		}
	}
	if len(ms) == 0 {
		if h.subs != nil {
			h.subs.release(roomBucket(room))
		}
		delete(h.rooms, room)
		delete(h.seqs, room)
		delete(h.gaps, room)
	}
}

// roomCount returns the number of named rooms (not the implicit ones)
// with local members.
func (h *hub) roomCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for room := range h.rooms {
		if !implicitRoom(room) {
			n++
		}
	}
	return n
}

// deliver routes one raw message from a bucket's events channel.
func (h *hub) deliver(raw []byte) {
	var e envelope
	if err := json.Unmarshal(raw, &e); err != nil || e.Room == "" && len(e.Rooms) == 0 {
		h.log.Warn("dropping malformed pub/sub message", "err", err, "size", len(raw))
		return
	}
	if e.Kind != "disconnect" {
		e.frame = eventFrame(e.Event, e.Data)
	}
	var closing []*Socket
	h.mu.Lock()
	switch {
	case e.Kind == "takeover":
		for s, m := range h.rooms[e.Room] {
			if m.presence && m.connID == e.Conn && s.id != e.Owner {
				h.endPresenceLocked(s, e.Room)
			}
		}
	case e.Seq > 0:
		h.noteSeqLocked(&e)
		for s, m := range h.rooms[e.Room] {
			if !m.presence {
				continue
			}
			if m.pending {
				if len(m.buf) < maxPendingBuffer {
					m.buf = append(m.buf, e)
				}
				continue
			}
			h.deliverLocked(e.Room, s, m, &e)
		}
	default:
		closing = h.routeLocked(&e)
	}
	h.mu.Unlock()
	for _, s := range closing { // their disconnect hooks take h.mu
		s.Close()
	}
}

// routeLocked delivers a module message to the local sockets it targets,
// once each, and returns them instead when the message disconnects them.
func (h *hub) routeLocked(e *envelope) (closing []*Socket) {
	targets := e.targets()
	bucket := roomBucket(targets[0])
	var seen map[*Socket]bool
	if len(targets) > 1 {
		seen = make(map[*Socket]bool)
	}
	for _, room := range targets {
		for s, m := range h.rooms[room] {
			if seen != nil {
				if seen[s] {
					continue
				}
				seen[s] = true
			}
			if !h.ownsLocked(s, e, bucket) || h.exceptedLocked(s, e) {
				continue
			}
			switch {
			case e.Kind == "disconnect":
				closing = append(closing, s)
			case m.pending && !m.joined: // a presence join in flight: after its snapshot
				if len(m.buf) < maxPendingBuffer {
					m.buf = append(m.buf, *e)
				}
			case m.presence && h.seenLocked(m, e):
				// recorded before the socket's join, or replayed to it
			default:
				s.sendFrame(e.frame)
			}
		}
	}
	return closing
}

// ownsLocked reports whether the message of bucket is the one that reaches
// s: a message to rooms of several buckets is published once per bucket,
// and s gets the copy of the bucket of the first target room (in e.All's
// order) it is in, so it gets exactly one.
func (h *hub) ownsLocked(s *Socket, e *envelope, bucket int) bool {
	if len(e.All) == 0 {
		return true
	}
	in := h.joined[s]
	for _, room := range e.All {
		if in[room] != nil {
			return roomBucket(room) == bucket
		}
	}
	return false
}

// exceptedLocked reports whether s is excepted from e: in one of its
// excepted rooms, or one of its excepted sockets.
func (h *hub) exceptedLocked(s *Socket, e *envelope) bool {
	in := h.joined[s]
	for _, room := range e.ExceptRooms {
		if in[room] != nil {
			return true
		}
	}
	return slices.Contains(e.ExceptSockets, s.id)
}

// deliverLocked sends e to s if it falls within s's membership window, and
// ends the membership at s's own leave.
func (h *hub) deliverLocked(room string, s *Socket, m *membership, e *envelope) {
	if e.Seq > 0 {
		if m.replayed.holds(position{e.Seq, 0}) { // the late live copy of a replayed event
			return
		}
		if h.restartedLocked(room, s, m, e.Seq) {
			return
		}
		if e.Seq < m.minSeq {
			return
		}
		if m.maxSeq > 0 && e.Seq > m.maxSeq {
			h.endPresenceLocked(s, room)
			return
		}
	}
	h.sendPresenceLocked(room, s, m, e)
	m.lastSeq = max(m.lastSeq, e.Seq)
	if e.Type == "leave" && e.Conn == m.connID || m.maxSeq > 0 && e.Seq >= m.maxSeq {
		h.endPresenceLocked(s, room)
	}
}

// noteSeqLocked records e's seq as the last one the hub delivered for its
// room (rooms without local members are not tracked).
func (h *hub) noteSeqLocked(e *envelope) {
	if _, ok := h.rooms[e.Room]; ok && e.Seq > 0 {
		h.seqs[e.Room] = e.Seq
	}
}

// restartedLocked reports whether an event of seq shows that room's history
// started over since s joined (its seq is not past the last one s received:
// Redis lost the room and counts from 1 again). s's connection went with the
// old history, so s counts as not joined and gets no more of the room.
func (h *hub) restartedLocked(room string, s *Socket, m *membership, seq int64) bool {
	if m.lastSeq == 0 || seq > m.lastSeq {
		return false
	}
	h.log.Debug("room history restarted; the socket's connection is gone", "room", room, "conn", m.connID,
		"seq", seq, "last", m.lastSeq)
	h.goneLocked(room, s, m)
	return true
}

// goneLocked ends s's membership of room and, if s still holds that
// membership's connection, clears it: s counts as not joined.
func (h *hub) goneLocked(room string, s *Socket, m *membership) {
	connID := m.connID
	h.endPresenceLocked(s, room)
	// No join of s can set a new connection between this read and write: a
	// join activates its membership first, which needs h.mu.
	if h.onGone != nil {
		h.onGone(s, room, connID)
	}
}
