package main

import (
	"encoding/json"
	"strconv"
)

// The hub's side of a subscription gap: while a bucket's subscription is
// down, the rooms of the bucket hear nothing; when it is back, the presence
// module reads each room's seq and resyncRoom tells the sockets of the rooms
// that moved meanwhile (presence:resync).

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
			if m.presence && !m.pending {
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
		if !m.presence || m.pending || m.mode == modeNone {
			continue // not presence-joined, not listening, or its join's snapshot is newer than the gap
		}
		s.Send("presence:resync", data)
		n++
		if restarted && m.lastSeq >= last {
			h.goneLocked(room, s, m)
		}
	}
	return n
}
