package main

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Reaper batch sizes: rooms asked for per query, connections removed per
// script call (each call holds Redis for the time it takes, so it is kept short).
const (
	reaperRoomBatch = 128
	reaperConnBatch = 256
)

// runReaper removes connections whose deadline has passed, on every node, until
// ctx ends.
//
// Every connection carries a deadline in its room's due zset: last heartbeat
// plus the lookback while its socket lives, disconnect time plus the grace
// once it is gone (the full TTL after a graceful shutdown). Every script that
// changes a room writes the room's earliest deadline into its bucket's index
// zset (roomBuckets of them, see presence.go), so that a tick costs one
// pipelined query per bucket when nothing is due, however many connections
// are live: the reaper asks each index for rooms whose earliest deadline has
// passed (by the Redis clock), and runs the reap script on each. The script
// removes the due connections, emits their leave events and re-files the room
// under its next deadline (or deletes it when it is empty).
//
// Any number of nodes may reap at once: the reap script is atomic and removing
// a connection that is already gone does nothing, so each connection gets
// exactly one leave event whoever gets there first. A tick handles at most
// reaperRoomBatch rooms per query and keeps querying while full batches come
// back, so a mass expiry is cleared within a few ticks without one long script.
func (p *Presence) runReaper(ctx context.Context) {
	t := time.NewTicker(p.opts.ReaperInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := p.reapOnce(ctx); err != nil && ctx.Err() == nil {
				p.metrics.redisError("reap")
				p.log.Warn("reaper tick failed", "err", err)
			}
		}
	}
}

// reapOnce runs one reaper tick and returns how many connections it removed.
// It walks every bucket's index in one pipelined round trip (see doEach),
// then reaps the due rooms one script call each. A bucket counts as full
// (more may be due) when its query was, a room when its script call was.
func (p *Presence) reapOnce(ctx context.Context) (int, error) {
	p.metrics.reaperRun()
	total := 0
	var partial error // a bucket that could not be queried
	for ctx.Err() == nil {
		buckets, err := p.dueRooms(ctx)
		if buckets == nil {
			return total, err
		}
		partial = cmp.Or(partial, err) // the other buckets are reaped meanwhile
		full := false
		for _, rooms := range buckets {
			full = full || len(rooms) == reaperRoomBatch
			for _, room := range rooms {
				n, err := p.reapRoom(ctx, room)
				if err != nil {
					return total, err
				}
				total += n
				full = full || n == reaperConnBatch
			}
		}
		if !full {
			break
		}
	}
	p.metrics.reaperRemoved(total)
	return total, partial
}

// dueRooms lists, per bucket, rooms whose earliest deadline has passed: in
// one script call on a single Redis, in one per bucket (pipelined) once a
// call was refused with CROSSSLOT (a cluster). A bucket that cannot be
// queried (its master is down) is left empty and its error returned, with
// the lists of the others.
func (p *Presence) dueRooms(ctx context.Context) ([][]string, error) {
	if !p.sharded.Load() {
		args := make([]any, 0, roomBuckets+2)
		args = append(args, roomBuckets)
		for k := range roomBuckets {
			args = append(args, p.indexKey(k))
		}
		r, err := redis.Values(p.do(ctx, dueRoomsScript, append(args, reaperRoomBatch)...))
		if err == nil {
			return roomLists(r)
		}
		if !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			return nil, err
		}
		p.sharded.Store(true)
	}
	calls := make([][]any, roomBuckets)
	for k := range calls {
		calls[k] = []any{1, p.indexKey(k), reaperRoomBatch}
	}
	replies, errs, err := p.doEach(ctx, dueRoomsScript, calls)
	if err != nil {
		return nil, err
	}
	out := make([][]string, roomBuckets)
	var first error
	for k := range out {
		var lists [][]string
		if r, err := redis.Values(replies[k], errs[k]); err != nil {
			first = cmp.Or(first, fmt.Errorf("bucket %d: %w", k, err))
		} else if lists, err = roomLists(r); err != nil || len(lists) != 1 {
			first = cmp.Or(first, fmt.Errorf("bucket %d: bad reply: %v", k, err))
		} else {
			out[k] = lists[0]
		}
	}
	return out, first
}

// roomLists converts dueRoomsScript's reply.
func roomLists(r []any) ([][]string, error) {
	out := make([][]string, len(r))
	for i := range r {
		var err error
		if out[i], err = redis.Strings(r[i], nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reapRoom removes the due connections of one room. It logs each removal
// with the deadline that caused it: lookback (no heartbeat for that long),
// grace (its socket dropped and no resume came) or shutdown (its node
// stopped gracefully and no resume came within the TTL).
func (p *Presence) reapRoom(ctx context.Context, room string) (int, error) {
	r, err := redis.Strings(p.do(ctx, reapScript, p.roomArgs(room, "", nil, reaperConnBatch)...))
	if err != nil {
		return 0, err
	}
	for i := 0; i+2 < len(r); i += 3 {
		p.log.Debug("reaped connection", "room", room, "conn", r[i], "reason", r[i+1], "deadline", r[i+2])
	}
	return len(r) / 3, nil
}
