package main

import (
	"context"
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
// changes a room writes the room's earliest deadline into one index zset, so
// that a tick costs one query when nothing is due, however many connections
// are live: the reaper asks the index for rooms whose earliest deadline has
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
// A room counts as full (more may be due) when its script call was.
func (p *Presence) reapOnce(ctx context.Context) (int, error) {
	p.metrics.reaperRun()
	total := 0
	for ctx.Err() == nil {
		rooms, err := p.dueRooms(ctx)
		if err != nil {
			return total, err
		}
		full := len(rooms) == reaperRoomBatch
		for _, room := range rooms {
			n, err := p.reapRoom(ctx, room)
			if err != nil {
				return total, err
			}
			total += n
			full = full || n == reaperConnBatch
		}
		if !full {
			break
		}
	}
	p.metrics.reaperRemoved(total)
	return total, nil
}

// dueRooms lists rooms whose earliest deadline has passed.
func (p *Presence) dueRooms(ctx context.Context) ([]string, error) {
	return redis.Strings(p.do(ctx, dueRoomsScript, p.indexKey(), reaperRoomBatch))
}

// reapRoom removes the due connections of one room. It logs each removal
// with the deadline that caused it: lookback (no heartbeat for that long),
// grace (its socket dropped and no resume came) or shutdown (its node
// stopped gracefully and no resume came within the TTL).
func (p *Presence) reapRoom(ctx context.Context, room string) (int, error) {
	r, err := redis.Strings(p.do(ctx, reapScript, p.roomArgs(room, "", reaperConnBatch)...))
	if err != nil {
		return 0, err
	}
	for i := 0; i+2 < len(r); i += 3 {
		p.log.Debug("reaped connection", "room", room, "conn", r[i], "reason", r[i+1], "deadline", r[i+2])
	}
	return len(r) / 3, nil
}
