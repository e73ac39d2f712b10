package main

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// Batched and counted presence events (presence:join's events option):
// a member in modeBatched or modeCount does not get each event as it comes;
// the hub keeps, per membership, the events owed since the last flush, and
// every tick (runBatches) sends each such member one presence:batch (the
// events, in seq order) or one presence:count (the room's count after its
// last event). The frames are built once per room and tick for all members
// owed the same events; a member whose window cuts the tick's events short
// (it joined or left within it) gets a frame of its own.

// sendPresenceLocked hands presence event e to s's membership m of room
// according to its mode. Module messages (no seq) always go at once.
func (h *hub) sendPresenceLocked(room string, s *Socket, m *membership, e *envelope) {
	if e.Seq == 0 {
		s.sendFrame(e.frame)
		return
	}
	switch m.mode {
	case modeEach:
		s.sendFrame(e.frame)
	case modeBatched:
		m.batch = append(m.batch, e)
		h.dirty[room] = true
	case modeCount:
		m.countEv = e
		h.dirty[room] = true
	}
}

// frameKey identifies what a flush sends: the same key in one room means
// the same frame.
type frameKey struct {
	count       bool
	first, last int64
	n           int
}

// flushLocked sends s what its membership m of room is owed, building the
// frame or taking it from frames (nil: build it).
func (h *hub) flushLocked(room string, s *Socket, m *membership, frames map[frameKey][]byte) {
	var key frameKey
	var build func() []byte
	switch {
	case len(m.batch) > 0:
		batch := m.batch
		key = frameKey{first: batch[0].Seq, last: batch[len(batch)-1].Seq, n: len(batch)}
		build = func() []byte { return batchFrame(room, batch) }
		m.batch = m.batch[:0]
	case m.countEv != nil:
		e := m.countEv
		key = frameKey{count: true, first: e.Seq, last: e.Seq}
		build = func() []byte { return countFrame(room, e) }
		m.countEv = nil
	default:
		return
	}
	f, ok := frames[key]
	if !ok {
		f = build()
		if frames != nil {
			frames[key] = f
		}
	}
	s.sendFrame(f)
}

// Counts in a big room. A count member of a room that changes on every tick
// (a room filling up) would get a frame per tick: 50,000 frames a second
// for 10,000 members at a 200 ms tick, for a figure nobody reads that
// often. So a node sends one room's counted members at most about
// countFramesPerTick frames per tick: with n local members in the room, a
// member gets a count every ⌈n / countFramesPerTick⌉ ticks while the room
// changes (at least every maxCountDelay, rounded up to a tick), on its turn:
// the members' turns are spread evenly over those ticks (membership.slot).
// The last count is always sent: a member whose count is held keeps the
// room dirty until its turn.
const (
	countFramesPerTick = 1000
	maxCountDelay      = time.Second
)

// countEvery returns how many ticks apart a room of n local members sends
// each counted member a count.
func (h *hub) countEvery(n int) uint64 {
	k := (n + countFramesPerTick - 1) / countFramesPerTick
	return uint64(max(1, min(k, h.maxCountTicks)))
}

// flush sends every batched and counted member what it is owed (a counted
// member of a big room only on its turn: see countEvery).
func (h *hub) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tick++
	for room := range h.dirty {
		frames := make(map[frameKey][]byte, 1)
		ms := h.rooms[room]
		every, held := h.countEvery(len(ms)), false
		for s, m := range ms {
			if !m.presence || m.pending {
				continue
			}
			if m.countEv != nil && (h.tick+m.slot)%every != 0 {
				held = true
				continue
			}
			h.flushLocked(room, s, m, frames)
		}
		if !held {
			delete(h.dirty, room)
		}
	}
}

// runBatches flushes every tick until ctx ends. The server runs it on its
// wait group.
func (h *hub) runBatches(ctx context.Context, every time.Duration) {
	h.mu.Lock()
	h.maxCountTicks = int((maxCountDelay + every - 1) / every)
	h.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.flush()
		}
	}
}

// batchFrame encodes presence:batch {roomId, events: [...]}.
func batchFrame(room string, batch []*envelope) []byte {
	n := 0
	for _, e := range batch {
		n += len(e.Data) + 1
	}
	b := make([]byte, 0, n+len(room)+32)
	b = append(b, `{"roomId":`...)
	b = append(b, jsonString(room)...)
	b = append(b, `,"events":[`...)
	for i, e := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.Data...)
	}
	b = append(b, "]}"...)
	return eventFrame("presence:batch", b)
}

// countFrame encodes presence:count {roomId, seq, count} from the room's
// last event e.
func countFrame(room string, e *envelope) []byte {
	var ev struct {
		Count json.RawMessage `json:"count"`
	}
	if json.Unmarshal(e.Data, &ev) != nil || len(ev.Count) == 0 {
		ev.Count = json.RawMessage(`null`)
	}
	b := make([]byte, 0, len(room)+len(ev.Count)+48)
	b = append(b, `{"roomId":`...)
	b = append(b, jsonString(room)...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"count":`...)
	b = append(b, ev.Count...)
	b = append(b, '}')
	return eventFrame("presence:count", b)
}
