package main

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// maxBeatBatch bounds the heartbeats refreshed by one script call.
const maxBeatBatch = 256

// beat is one plain heartbeat waiting for its batch.
type beat struct {
	room, connID, sid string
	epoch             int64 // -1 when the client sent none
	done              chan beatResult
}

type beatResult struct {
	code, epoch int64
	err         error
}

// beat refreshes one connection through the batcher and returns the script's
// code (0 ok, 1 not_joined, 2 stale_epoch) and the connection's epoch.
func (p *Presence) beat(ctx context.Context, s *Socket, room, connID string, epoch int64) (int64, int64, error) {
	b := &beat{room: room, connID: connID, sid: s.id, epoch: epoch, done: make(chan beatResult, 1)}
	select {
	case p.beats <- b:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	select {
	case r := <-b.done:
		return r.code, r.epoch, r.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// maxBeatFlights bounds the heartbeat batches in flight at once.
const maxBeatFlights = 4

// runBeats coalesces plain heartbeats: it takes the first waiting heartbeat,
// lets others join it for HeartbeatLinger (or until maxBeatBatch), and
// refreshes them all with one script call: one Redis round trip for the
// whole batch, with every check of a single heartbeat made per item (owner
// sid, epoch). Up to maxBeatFlights batches are in flight; while they all
// are, new heartbeats gather into the next batch. Exactly one goroutine
// runs it; it ends with ctx, after its batches, failing any heartbeat still
// waiting.
func (p *Presence) runBeats(ctx context.Context) {
	flights := make(chan struct{}, maxBeatFlights)
	defer func() { // wait for the batches in flight
		for i := 0; i < maxBeatFlights; i++ {
			flights <- struct{}{}
		}
	}()
	for {
		batch := make([]*beat, 0, 16)
		select {
		case <-ctx.Done():
			p.failBeats(ctx.Err())
			return
		case b := <-p.beats:
			batch = append(batch, b)
		}
		if p.opts.HeartbeatLinger > 0 {
			linger := time.NewTimer(p.opts.HeartbeatLinger)
		collect:
			for len(batch) < maxBeatBatch {
				select {
				case b := <-p.beats:
					batch = append(batch, b)
				case <-linger.C:
					break collect
				}
			}
			linger.Stop()
		}
		select { // a free flight, gathering meanwhile
		case flights <- struct{}{}:
		case <-ctx.Done():
			for _, b := range batch {
				b.done <- beatResult{err: ctx.Err()}
			}
			p.failBeats(ctx.Err())
			return
		}
	gather:
		for len(batch) < maxBeatBatch { // take whatever else is already waiting
			select {
			case b := <-p.beats:
				batch = append(batch, b)
			default:
				break gather
			}
		}
		go func() { // owned by runBeats, which waits for its flight slot
			defer func() { <-flights }()
			p.flushBeats(ctx, batch)
		}()
	}
}

// failBeats answers every queued heartbeat with err.
func (p *Presence) failBeats(err error) {
	for {
		select {
		case b := <-p.beats:
			b.done <- beatResult{err: err}
		default:
			return
		}
	}
}

// flushBeats runs one batch and hands each heartbeat its result.
func (p *Presence) flushBeats(ctx context.Context, batch []*beat) {
	args := make([]any, 0, 3+2*len(batch)+4*len(batch))
	args = append(args, 1+2*len(batch), p.indexKey())
	for _, b := range batch {
		args = append(args, p.connKey(b.room, b.connID), p.roomTag(b.room)+"due")
	}
	args = append(args, p.lookbackMs(), p.keyTTLMs())
	for _, b := range batch {
		args = append(args, b.room, b.connID, b.sid, b.epoch)
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.OpTimeout)
	defer cancel()
	r, err := redis.Int64s(p.do(ctx, heartbeatScript, args...))
	if err == nil && len(r) != 2*len(batch) {
		err = fmt.Errorf("presence heartbeat: reply has %d values for %d heartbeats", len(r), len(batch))
	}
	p.metrics.heartbeatBatch(len(batch))
	for i, b := range batch {
		if err != nil {
			b.done <- beatResult{err: err}
			continue
		}
		b.done <- beatResult{code: r[2*i], epoch: r[2*i+1]}
	}
}
