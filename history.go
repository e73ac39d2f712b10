package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Room history and recovery (PROTOCOL.md, "Recovery"): each room keeps
// what it sent for a while in Redis (history_lua.go), and a client that
// comes back with the position it saw last gets exactly what it missed,
// then the live events, instead of a fresh snapshot.

// HistoryOptions bounds each room's history. Zero values take the defaults
// given; a negative value turns history off (no recovery: every join with
// a position answers recovered false).
type HistoryOptions struct {
	// TTL is how long an event stays in its room's history. Zero value: 2 min.
	TTL time.Duration
	// Max is the most events a room's history holds. Zero value: 1000.
	Max int
}

func (o HistoryOptions) withDefaults() HistoryOptions {
	if o.TTL == 0 {
		o.TTL = 2 * time.Minute
	}
	if o.Max == 0 {
		o.Max = 1000
	}
	return o
}

// on reports whether rooms keep a history.
func (o HistoryOptions) on() bool { return o.TTL > 0 && o.Max > 0 }

// historyArg is the history setting the scripts take as their last ARGV.
func (p *Presence) historyArg() string {
	h := p.opts.History
	if !h.on() {
		return "0:0"
	}
	return strconv.FormatInt(h.TTL.Milliseconds(), 10) + ":" + strconv.Itoa(h.Max)
}

// position is a place in a room's sequence: a presence event is (seq, 0),
// the k-th recorded module message after it (seq, k).
type position struct{ seq, sub int64 }

func (a position) after(b position) bool {
	return a.seq > b.seq || a.seq == b.seq && a.sub > b.sub
}

// position returns e's place in its room's sequence, if it has one.
func (e *envelope) position() (position, bool) {
	switch {
	case e.Seq > 0:
		return position{e.Seq, 0}, true
	case e.HistSub > 0:
		return position{e.HistSeq, e.HistSub}, true
	}
	return position{}, false
}

// window is a range of positions (from, to]; the zero window holds none.
type window struct{ from, to position }

func (w window) holds(p position) bool { return p.after(w.from) && !p.after(w.to) }

// seenLocked reports whether recorded module message e is not for s's
// presence membership m: recorded before its join, or replayed to it.
func (h *hub) seenLocked(m *membership, e *envelope) bool {
	at, ok := e.position()
	return ok && e.Seq == 0 && !at.after(m.after)
}

// since is the position a joining client saw last, in its history epoch.
type since struct {
	at    position
	epoch string
}

// parseSince reads presence:join's optional since field:
// { seq, sub?, epoch }.
func parseSince(o object) (*since, error) {
	if !o.has("since") {
		return nil, nil
	}
	bad := invalid("since must be an object with seq and sub (non-negative integers, sub optional) and epoch (a string of digits)")
	r, err := decodeObject(o["since"])
	if err != nil || !r.has("seq") || !r.has("epoch") {
		return nil, bad
	}
	seq, _, err := r.integer("seq")
	if err != nil {
		return nil, bad
	}
	sub, _, err := r.integer("sub")
	if err != nil {
		return nil, bad
	}
	var epoch string
	if json.Unmarshal(r["epoch"], &epoch) != nil || len(epoch) > 32 {
		return nil, bad
	}
	for _, c := range []byte(epoch) {
		if c < '0' || c > '9' {
			return nil, bad
		}
	}
	return &since{at: position{seq, sub}, epoch: epoch}, nil
}

// arg is the join's history setting with the position (luaHistory).
func (s *since) arg(setting string) string {
	return setting + ":" + strconv.FormatInt(s.at.seq, 10) + ":" + strconv.FormatInt(s.at.sub, 10) + ":" + s.epoch
}

// joinHistory is the history part of a join's reply.
type joinHistory struct {
	from      position   // the client's position (since), when it gave one
	epoch     string     // the room history's epoch; "" when history is off
	recovered int64      // -1: no position given; 0: not recovered; 1: replay holds what was missed
	replay    []envelope // the events after the client's position, in order
	end       position   // the room's position when the join ended
}

// parseJoinHistory reads what luaRecovery returned after the snapshot:
// reply[5:] of joinScript, reply[1:] of syncSinceScript.
func (p *Presence) parseJoinHistory(reply []any) (*joinHistory, error) {
	if len(reply) != 5 {
		return nil, fmt.Errorf("history: reply has %d values", len(reply))
	}
	jh := &joinHistory{}
	var raw []any
	if _, err := redis.Scan(reply, &jh.epoch, &jh.recovered, &raw, &jh.end.seq, &jh.end.sub); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	jh.replay = make([]envelope, 0, len(raw))
	for _, r := range raw {
		b, _ := r.([]byte)
		var e envelope
		if err := json.Unmarshal(b, &e); err != nil {
			p.log.Warn("dropping malformed history entry", "err", err, "size", len(b))
			jh.recovered = 0 // the client cannot rely on the replay: it gets nothing of it
			break
		}
		e.frame = eventFrame(e.Event, e.Data)
		jh.replay = append(jh.replay, e)
	}
	if jh.recovered != 1 {
		jh.replay = nil
	}
	return jh, nil
}

// count records the outcome in m when the client gave a position.
func (jh *joinHistory) count(m *metrics) {
	if jh.recovered >= 0 && m != nil {
		m.recovery(jh.recovered == 1, len(jh.replay))
	}
}

// ackFields returns what the join's acknowledgement says of the history:
// its epoch, and whether the client recovered from its position and how
// many events that replayed.
func (jh *joinHistory) ackFields() string {
	var b bytes.Buffer
	if jh.epoch != "" {
		b.WriteString(`,"history":{"epoch":"` + jh.epoch + `"}`)
	}
	if jh.recovered >= 0 {
		fmt.Fprintf(&b, `,"recovered":%t,"replayed":%d`, jh.recovered == 1, len(jh.replay))
	}
	return b.String()
}

// activateWithHistory makes s's pending membership of room live for connID
// like activate, after sending what the join replayed: the replayed events
// first, then the buffered live ones that come after the join's end (those
// the replay holds, or that were published before the join, are dropped).
func (h *hub) activateWithHistory(s *Socket, room, connID string, minSeq int64, jh *joinHistory) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room][s]
	if m == nil || !m.presence {
		return
	}
	m.connID, m.minSeq, m.pending = connID, minSeq, false
	m.after = jh.end
	if jh.recovered == 1 { // late live copies of what was replayed are dropped
		m.replayed = window{jh.from, jh.end}
	}
	m.buf = sinceOwnEvent(m.buf, connID, minSeq)
	h.sendReplayLocked(room, s, m, jh, true)
}

// sinceOwnEvent drops the buffered events that arrived before the join's
// own event (its join, or its resume's update: seq minSeq, its connId):
// they were published before the join and are not for the joiner, whatever
// their seq (a room that emptied and started over while they were in flight
// numbers from 1 again, so an old event's seq can exceed the new room's).
// Without that event in the buffer (a resume with nothing to announce, a
// full buffer) it keeps them all, for the seq checks to sort out.
func sinceOwnEvent(buf []envelope, connID string, minSeq int64) []envelope {
	for i := range buf {
		if e := &buf[i]; e.Seq == minSeq && e.Conn == connID && e.Kind == "" {
			return buf[i:]
		}
	}
	return buf
}

// hold makes s's live presence membership of room pending again: what
// arrives is buffered until release. It reports whether s had one.
func (h *hub) hold(s *Socket, room string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room][s]
	if m == nil || !m.presence || m.pending {
		return false
	}
	m.pending = true
	return true
}

// release ends a hold: it sends the events replayed (jh), then those
// buffered meanwhile that come after the replay's end, or all of them
// when nothing was replayed.
func (h *hub) release(s *Socket, room string, jh *joinHistory) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room][s]
	if m == nil || !m.presence || !m.pending {
		return
	}
	m.pending = false
	if jh.recovered == 1 { // late live copies of what was replayed are dropped
		m.after, m.replayed = jh.end, window{jh.from, jh.end}
	}
	h.sendReplayLocked(room, s, m, jh, false)
}

// sendReplayLocked sends s's membership m of room the events jh replayed,
// then those buffered while it was pending, except the buffered copies of
// what the replay held (when it recovered) and, with joined, the recorded
// module messages published before the join's end; it stops when an event
// ends the membership.
func (h *hub) sendReplayLocked(room string, s *Socket, m *membership, jh *joinHistory, joined bool) {
	buf := m.buf
	m.buf = nil
	for i := range jh.replay {
		e := &jh.replay[i]
		h.sendPresenceLocked(room, s, m, e)
		m.lastSeq = max(m.lastSeq, e.Seq)
	}
	for i := range buf {
		e := &buf[i]
		if at, ok := e.position(); ok && (jh.recovered == 1 || joined && e.Seq == 0) && !at.after(jh.end) {
			continue
		}
		h.deliverLocked(room, s, m, e)
		if h.rooms[room][s] != m { // its leave ended the membership
			return
		}
	}
}

// syncSince answers presence:sync with a position (the client's answer to
// presence:resync, say): the events the room sent after it when the
// history reaches back, before any later one, else a fresh snapshot.
func (p *Presence) syncSince(ctx context.Context, s *Socket, room, connID string, from *since, snapMode string, pageSize int64) (any, error) {
	held := p.hub.hold(s, room)
	args := p.connArgs(room, s.id, connID, snapMode, pageSize, p.opts.MaxSnapshot)
	args[len(args)-1] = from.arg(p.historyArg())
	reply, err := redis.Values(p.do(ctx, syncSinceScript, args...))
	jh := &joinHistory{recovered: 0}
	var snap string
	if err == nil {
		if jh, err = p.parseJoinHistory(reply[1:]); err == nil {
			jh.from = from.at
			snap, err = redis.String(reply[0], nil)
		}
	}
	if held {
		if err != nil {
			jh = &joinHistory{}
		}
		p.hub.release(s, room, jh)
	}
	if errors.Is(err, redis.ErrNil) {
		p.forget(s, room)
		return nil, errNotJoined
	}
	if err != nil {
		return nil, err
	}
	jh.count(p.metrics)
	return json.RawMessage(`{"snapshot":` + snap + jh.ackFields() + `}`), nil
}

// Recorded makes the emit take part in its room's sequence: the message gets
// the room's position (its data, which must be a JSON object, gets fields
// seq and sub), goes into the room's history and is replayed to clients that
// recover. A recorded emit targets exactly one room, with no exceptions.
func (b Broadcast) Recorded() Broadcast {
	b.recorded = true
	return b
}

// errRecorded answers a recorded emit that is not to exactly one room.
var errRecorded = invalid("a recorded emit goes to one room, without exceptions")

// emitRecorded publishes a recorded module message (Recorded) with
// recordScript.
func (b Broadcast) emitRecorded(ctx context.Context, event string, data json.RawMessage) error {
	if b.err != nil {
		return b.err
	}
	if len(b.rooms) != 1 || len(b.exceptRooms) > 0 || len(b.exceptSockets) > 0 || implicitRoom(b.rooms[0]) {
		return errRecorded
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return invalid("the data of a recorded emit must be a JSON object")
	}
	body := bytes.TrimSpace(data[:len(data)-1]) // without its closing brace
	room, p := b.rooms[0], b.srv.presence
	tag := p.roomTag(room)
	head := `{"r":` + jsonString(room) + `,"e":` + jsonString(event)
	_, err := p.do(ctx, recordScript, tag+"seq", tag+"h", tag+"hm",
		p.bucketChannel(roomBucket(room)), head, body, p.historyArg())
	return err
}
