package main

import (
	"encoding/json"
	"log/slog"
	"sync"
)

// hub routes messages from Redis pub/sub to this node's sockets by room. It
// is the only consumer of the subscriber, which calls deliver for each
// message in the order Redis published them; deliver only queues (Socket.Send
// never blocks), so the order in which a room's events were applied is the
// order in which every local socket receives them.
//
// A socket joining a room is added as a pending membership before its join
// script runs, so no event published after the join can slip past it. While
// pending it buffers what arrives; when the join returns, activate releases
// the buffered events from the join's seq on and drops the earlier ones.
type hub struct {
	log *slog.Logger

	mu    sync.Mutex // guards the following fields
	rooms map[string]map[*Socket]*membership
}

// membership is a socket's subscription to a room's events.
type membership struct {
	connID  string
	pending bool
	buf     []envelope // events received while pending
	minSeq  int64      // presence events with a lower seq are not for this socket
	maxSeq  int64      // when > 0: the socket's leave; later events are not for it
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
	return &hub{log: log, rooms: make(map[string]map[*Socket]*membership)}
}

// subscribe adds s to room as a pending membership, replacing any it had.
func (h *hub) subscribe(s *Socket, room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := h.rooms[room]
	if ms == nil {
		ms = make(map[*Socket]*membership)
		h.rooms[room] = ms
	}
	ms[s] = &membership{pending: true}
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
		delete(h.rooms, room)
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
		if e.Seq < m.minSeq {
			return
		}
		if m.maxSeq > 0 && e.Seq > m.maxSeq {
			h.removeLocked(s, room)
			return
		}
	}
	s.sendFrame(e.frame)
	if e.Type == "leave" && e.Conn == m.connID || m.maxSeq > 0 && e.Seq >= m.maxSeq {
		h.removeLocked(s, room)
	}
}
