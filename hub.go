package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
)

// hub routes messages from Redis pub/sub to this node's sockets by room. It
// is the only consumer of the subscriptions (pubsub.go), whose receivers call
// deliver for each message of a bucket in the order Redis published them; deliver only queues (Socket.Send
// never blocks), so the order in which a room's events were applied is the
// order in which every local socket receives them.
//
// A socket joining a room is added as a pending membership before its join
// script runs, so no event published after the join can slip past it. While
// pending it buffers what arrives; when the join returns, activate releases
// the buffered events from the join's seq on and drops the earlier ones.
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

	mu    sync.Mutex // guards the following fields
	rooms map[string]map[*Socket]*membership
	seqs  map[string]int64 // room -> last seq delivered; only rooms in rooms
	// gaps holds, per room, what the hub had delivered when the room's
	// subscription was last lost, until a resync settles it.
	gaps   map[string]gapMark
	gapGen uint64 // counts markGap calls
}

// gapMark is where a room stood when its subscription was lost.
type gapMark struct {
	seq  int64  // the last seq delivered before the gap
	seen bool   // whether any seq was delivered before it
	gen  uint64 // which gap (hub.gapGen when it was marked)
}

// membership is a socket's subscription to a room's events.
type membership struct {
	connID  string
	pending bool
	buf     []envelope // events received while pending
	minSeq  int64      // presence events with a lower seq are not for this socket
	maxSeq  int64      // when > 0: the socket's leave; later events are not for it
	lastSeq int64      // the last presence event's seq delivered to the socket
}

// maxPendingBuffer bounds what a pending membership holds; a join script
// outruns it only when the room is extremely busy, and then the socket's
// client recovers through presence:sync after seeing a gap in seq.
const maxPendingBuffer = 4096

// envelope is a message on the events channel. Presence events carry their
// seq (q), type (t) and connId (c); module events carry only r, e and d; a
// takeover notice has k="takeover", c and the new owner's sid o.
type envelope struct {
	Room  string          `json:"r"`
	Event string          `json:"e"`
	Seq   int64           `json:"q"`
	Type  string          `json:"t"`
	Conn  string          `json:"c"`
	Kind  string          `json:"k"`
	Owner string          `json:"o"`
	Data  json.RawMessage `json:"d"`

	frame []byte // the Engine.IO message for the sockets: encoded once
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log, rooms: make(map[string]map[*Socket]*membership), seqs: make(map[string]int64),
		gaps: make(map[string]gapMark)}
}

// subscribe adds s to room as a pending membership, replacing any it had.
func (h *hub) subscribe(s *Socket, room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := h.rooms[room]
	if ms == nil {
		ms = make(map[*Socket]*membership)
		h.rooms[room] = ms
		if h.subs != nil {
			h.subs.acquire(roomBucket(room))
		}
	}
	ms[s] = &membership{pending: true}
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
	if m == nil {
		return
	}
	m.connID, m.minSeq, m.pending = connID, minSeq, false
	buf := m.buf
	m.buf = nil
	for i := range buf {
		h.deliverLocked(room, s, m, &buf[i])
	}
}

// endAt records that s's membership of room ends with the event of seq: it
// is removed when that event (or a later one) is delivered.
func (h *hub) endAt(s *Socket, room string, seq int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.rooms[room][s]; m != nil {
		m.maxSeq = seq
	}
}

// unsubscribe removes s from room at once.
func (h *hub) unsubscribe(s *Socket, room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(s, room)
}

// drop removes s from every room; called when the socket disconnects.
func (h *hub) drop(s *Socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for room, ms := range h.rooms {
		if _, ok := ms[s]; ok {
			h.removeLocked(s, room)
		}
	}
}

func (h *hub) removeLocked(s *Socket, room string) {
	ms := h.rooms[room]
	delete(ms, s)
	if len(ms) == 0 {
		if _, ok := h.rooms[room]; ok && h.subs != nil {
			h.subs.release(roomBucket(room))
		}
		delete(h.rooms, room)
		delete(h.seqs, room)
		delete(h.gaps, room)
	}
}

// rooms returns the number of rooms with local members.
func (h *hub) roomCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}

// deliver routes one raw message from the events channel.
func (h *hub) deliver(raw []byte) {
	var e envelope
	if err := json.Unmarshal(raw, &e); err != nil || e.Room == "" {
		h.log.Warn("dropping malformed pub/sub message", "err", err, "size", len(raw))
		return
	}
	e.frame = eventFrame(e.Event, e.Data)
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := h.rooms[e.Room]
	if e.Kind == "takeover" {
		for s, m := range ms {
			if m.connID == e.Conn && s.id != e.Owner {
				h.removeLocked(s, e.Room)
			}
		}
		return
	}
	h.noteSeqLocked(&e)
	for s, m := range ms {
		if m.pending {
			if len(m.buf) < maxPendingBuffer {
				m.buf = append(m.buf, e)
			}
			continue
		}
		h.deliverLocked(e.Room, s, m, &e)
	}
}

// deliverLocked sends e to s if it falls within s's membership window, and
// ends the membership at s's own leave.
func (h *hub) deliverLocked(room string, s *Socket, m *membership, e *envelope) {
	if e.Seq > 0 {
		if h.restartedLocked(room, s, m, e.Seq) {
			return
		}
		if e.Seq < m.minSeq {
			return
		}
		if m.maxSeq > 0 && e.Seq > m.maxSeq {
			h.removeLocked(s, room)
			return
		}
	}
	s.sendFrame(e.frame)
	m.lastSeq = max(m.lastSeq, e.Seq)
	if e.Type == "leave" && e.Conn == m.connID || m.maxSeq > 0 && e.Seq >= m.maxSeq {
		h.removeLocked(s, room)
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
	h.removeLocked(s, room)
	// No join of s can set a new connection between this read and write: a
	// join activates its membership first, which needs h.mu.
	if r, _, connID := s.presence(); r == room && connID == m.connID {
		s.setPresence("", "", "")
	}
}

// markGap records that the subscription of buckets is down: until it is
// back, nothing of their rooms is delivered, and resyncRoom compares with the
// seqs delivered until now.
func (h *hub) markGap(buckets []int) {
	in := bucketSet(buckets)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gapGen++
	for room := range h.rooms {
		if in[roomBucket(room)] {
			seq, seen := h.seqs[room]
			h.gaps[room] = gapMark{seq: seq, seen: seen, gen: h.gapGen}
		}
	}
}

func bucketSet(buckets []int) *[roomBuckets]bool {
	var in [roomBuckets]bool
	for _, b := range buckets {
		in[b] = true
	}
	return &in
}

// joinedRooms returns the rooms of buckets with at least one active
// membership, and for each the gap it is in (0: none), for resyncRoom.
func (h *hub) joinedRooms(buckets []int) (rooms []string, gens []uint64) {
	in := bucketSet(buckets)
	h.mu.Lock()
	defer h.mu.Unlock()
	for room, ms := range h.rooms {
		if !in[roomBucket(room)] {
			continue
		}
		for _, m := range ms {
			if !m.pending {
				rooms, gens = append(rooms, room), append(gens, h.gaps[room].gen)
				break
			}
		}
	}
	return rooms, gens
}

// resyncRoom is told the room's seq in Redis after a subscription gap (gen,
// as joinedRooms gave it, from before seq was read). If it differs from the
// last seq delivered before the gap (or none was), the room moved while the
// node was deaf: each joined socket gets presence:resync {roomId, seq}
// (PROTOCOL.md), and its client answers with presence:sync. If seq is below
// the last seq delivered before the gap, Redis lost the room's history: a
// socket that had received that much saw the lost history, and its
// connection is gone with it, so it also stops getting the room and counts
// as not joined (its presence:sync answers not_joined and its client joins
// again). (Events delivered since the gap say nothing of this: they may be
// newer than seq, which was read after the subscription came back.) If the
// room went into another gap since gen, seq may predate what the hub
// delivered before that one: the resync of the newer gap decides, and this
// one does nothing. It returns how many sockets were told.
func (h *hub) resyncRoom(room string, seq int64, gen uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	gap, ok := h.gaps[room]
	if ok && gap.gen != gen {
		return 0
	}
	delete(h.gaps, room)
	known, last := ok && gap.seen, gap.seq
	if known && last == seq {
		return 0
	}
	restarted := known && seq < last
	data := json.RawMessage(`{"roomId":` + jsonString(room) + `,"seq":` + strconv.FormatInt(seq, 10) + `}`)
	n := 0
	for s, m := range h.rooms[room] {
		if m.pending {
			continue // its join's snapshot is newer than the gap
		}
		s.Send("presence:resync", data)
		n++
		if restarted && m.lastSeq >= last {
			h.goneLocked(room, s, m)
		}
	}
	return n
}
