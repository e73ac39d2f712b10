package main

import (
	"context"
	"fmt"

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
// code (0 ok, 1 not_joined, 2 stale_epoch) and the connection's epoch. A
// deadline that runs out while the heartbeat waits for its batch is
// classified like any Redis timeout (overload while Redis answers).
func (p *Presence) beat(ctx context.Context, s *Socket, room, connID string, epoch int64) (int64, int64, error) {
	b := &beat{room: room, connID: connID, sid: s.id, epoch: epoch, done: make(chan beatResult, 1)}
	select {
	case p.beats <- b:
	case <-ctx.Done():
		return 0, 0, p.failure(ctx.Err())
	}
	select {
	case r := <-b.done:
		return r.code, r.epoch, r.err
	case <-ctx.Done():
		return 0, 0, p.failure(ctx.Err())
	}
}

// Batcher bounds: heartbeats waiting for a batch, and batches in flight at
// once (only full batches overlap; see runBeats).
const (
	maxBeatQueue   = 1024
	maxBeatFlights = 4
)

// runBeats coalesces plain heartbeats by natural batching: a heartbeat that
// arrives when no batch is in flight is sent at once, alone (a quiet node
// answers in one Redis round trip, with no waiting); heartbeats that arrive
// while a batch is in flight gather into the next one, which leaves when the
// flight lands, so a busy node sends batches about as large as its arrivals
// per round trip. A batch that reaches maxBeatBatch leaves at once if fewer
// than maxBeatFlights batches are in flight. Each batch is one script call
// that makes every check of a single heartbeat per item (owner sid, epoch).
// Exactly one goroutine runs it; it ends with ctx, after its batches,
// failing any heartbeat still waiting.
func (p *Presence) runBeats(ctx context.Context) {
	landed := make(chan struct{}, maxBeatFlights)
	inFlight := 0
	defer func() { // wait for the batches in flight
		for ; inFlight > 0; inFlight-- {
			<-landed
		}
	}()
	var batch []*beat
	for {
		if len(batch) > 0 && (inFlight == 0 || len(batch) >= maxBeatBatch && inFlight < maxBeatFlights) {
			inFlight++
			go func(batch []*beat) { // owned by runBeats, which waits for it to land
				defer func() { landed <- struct{}{} }()
				p.flushBeats(ctx, batch)
			}(batch)
			batch = nil
			continue
		}
		in := p.beats
		if len(batch) >= maxBeatBatch {
			in = nil // full: wait for a flight to land
		}
		select {
		case <-ctx.Done():
			for _, b := range batch {
				b.done <- beatResult{err: ctx.Err()}
			}
			p.failBeats(ctx.Err())
			return
		case b := <-in:
			if batch == nil {
				batch = make([]*beat, 0, 16)
			}
			batch = append(batch, b)
		case <-landed:
			inFlight--
		}
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

// flushBeats runs one batch and hands each heartbeat its result. The batch
// is split by room bucket (a script's keys must share one cluster slot): one
// script call per bucket, all pipelined.
func (p *Presence) flushBeats(ctx context.Context, batch []*beat) {
	groups := make(map[int][]*beat)
	var order []int
	for _, b := range batch {
		k := roomBucket(b.room)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], b)
	}
	calls := make([][]any, len(order))
	for i, k := range order {
		calls[i] = p.beatArgs(k, groups[k])
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.OpTimeout)
	defer cancel()
	replies, errs, err := p.doEach(ctx, heartbeatScript, calls)
	p.metrics.heartbeatBatch(len(batch))
	for i, k := range order {
		group := groups[k]
		var r []int64
		gerr := err
		if gerr == nil {
			r, gerr = redis.Int64s(replies[i], errs[i])
		}
		if gerr == nil && len(r) != 2*len(group) {
			gerr = fmt.Errorf("presence heartbeat: reply has %d values for %d heartbeats", len(r), len(group))
		}
		for j, b := range group {
			if gerr != nil {
				b.done <- beatResult{err: gerr}
				continue
			}
			b.done <- beatResult{code: r[2*j], epoch: r[2*j+1]}
		}
	}
}

// beatArgs returns the heartbeat script's keys and arguments for a group of
// heartbeats of bucket k.
func (p *Presence) beatArgs(k int, group []*beat) []any {
	args := make([]any, 0, 4+6*len(group))
	args = append(args, 1+2*len(group), p.indexKey(k))
	for _, b := range group {
		args = append(args, p.connKey(b.room, b.connID), p.roomTag(b.room)+"due")
	}
	args = append(args, p.lookbackMs(), p.keyTTLMs())
	for _, b := range group {
		args = append(args, b.room, b.connID, b.sid, b.epoch)
	}
	return args
}
