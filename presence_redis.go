package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Presence's side of Redis: the key layout's helpers, the arguments of the
// room scripts, and the calls that run them and classify failures.

// Key layout version 2 (see presence_lua.go): rooms are spread over
// roomBuckets buckets; a room's keys, its bucket's room index and its
// bucket's events channel share the bucket's hash tag {b<k>}, so that every
// key one script touches is in one Redis Cluster slot. roomBuckets is part of
// the layout: changing it moves rooms to other buckets.
const (
	keyLayoutVersion = 2
	roomBuckets      = 256
)

// roomBucket returns the bucket of room: FNV-1a (32 bits) of its bytes, mod
// roomBuckets.
// A socket's own room is in the bucket its session id carries (see
// newSessionID).
func roomBucket(room string) int {
	if strings.HasPrefix(room, socketRoomPrefix) {
		if k, ok := sessionBucket(room[len(socketRoomPrefix):]); ok {
			return k
		}
	}
	h := uint32(2166136261)
	for i := 0; i < len(room); i++ {
		h ^= uint32(room[i])
		h *= 16777619
	}
	return int(h % roomBuckets)
}

// Redis keys and channels; see the layout in presence_lua.go.
func (p *Presence) bucketTag(b int) string { return p.opts.Prefix + "{b" + strconv.Itoa(b) + "}" }
func (p *Presence) roomTag(room string) string {
	return p.bucketTag(roomBucket(room)) + "{" + room + "}:"
}
func (p *Presence) indexKey(b int) string      { return p.bucketTag(b) + ":rooms" }
func (p *Presence) bucketChannel(b int) string { return p.bucketTag(b) + ":events" }
func (p *Presence) connKey(room, connID string) string {
	return p.roomTag(room) + "c:" + connID
}

// publishCommand is the command that publishes on the events channels.
func (p *Presence) publishCommand() string {
	if p.shardChannels.Load() {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// script returns s as it runs here: its SPUBLISH twin when the events
// channels are shard channels.
func (p *Presence) script(s *redis.Script) *redis.Script {
	if t := shardedScripts[s]; t != nil && p.shardChannels.Load() {
		return t
	}
	return s
}

// roomArgs returns the KEYS and the common ARGV of a room script, then
// extra, then the history setting (luaHistory). The history's keys come
// last among the KEYS, so that a script does not run where they are not (a
// slot migration) rather than fail after its first writes. The KEYS are the room's, then the keys of the connections conns
// (the seq key when there are none: a script declares a fixed number).
func (p *Presence) roomArgs(room, sid string, conns []string, extra ...any) []any {
	tag, b := p.roomTag(room), roomBucket(room)
	args := make([]any, 0, 12+len(extra))
	args = append(args, tag+"seq", tag+"conns", tag+"members", tag+"due", p.indexKey(b), tag+"ids")
	for _, c := range conns {
		args = append(args, tag+"c:"+c)
	}
	if len(conns) == 0 {
		args = append(args, tag+"seq")
	}
	args = append(args, tag+"h", tag+"hm") // the history's (luaHistory), declared for Redis Cluster
	args = append(args, room, jsonString(room), tag+"c:", p.bucketChannel(b), sid)
	return append(append(args, extra...), p.historyArg())
}

// connArgs returns the arguments of a script on the caller's connection
// connID: its key declared after the room's, connID as ARGV[6], then extra.
func (p *Presence) connArgs(room, sid, connID string, extra ...any) []any {
	return p.roomArgs(room, sid, []string{connID}, append([]any{connID}, extra...)...)
}

// joinArgs returns the KEYS and ARGV of joinScript for a new connection
// cid, resuming resumeID if not "", then extra (ARGV[7] on).
func (p *Presence) joinArgs(room, sid, cid, resumeID string, extra ...any) []any {
	resumed := resumeID
	if resumed == "" {
		resumed = cid
	}
	return p.roomArgs(room, sid, []string{cid, resumed}, append([]any{cid}, extra...)...)
}

// do runs a script on a pooled connection within ctx. A pooled connection
// that finds the server gone (EOF, reset: Redis restarted since it was
// dialed) is retried once on a fresh one: the script never ran on a server
// that had closed the connection. Timeouts are classified by redisFailure.
func (p *Presence) do(ctx context.Context, s *redis.Script, keysAndArgs ...any) (any, error) {
	reply, err := p.doOnce(ctx, s, keysAndArgs...)
	if err != nil && isConnLost(err) && ctx.Err() == nil {
		reply, err = p.doOnce(ctx, s, keysAndArgs...)
	}
	if err == nil {
		p.answered()
		return reply, nil
	}
	return reply, p.failure(err)
}

func (p *Presence) doOnce(ctx context.Context, s *redis.Script, keysAndArgs ...any) (any, error) {
	start := time.Now()
	c, err := p.pool.GetContext(ctx)
	if err != nil {
		p.metrics.redisError("get")
		return nil, err
	}
	defer c.Close()
	reply, err := p.script(s).DoContext(ctx, c, keysAndArgs...)
	p.metrics.redisRoundTrip(time.Since(start))
	if err != nil && isUnavailable(err) {
		p.metrics.redisError("do")
	}
	return reply, err
}

// doEach runs script s once per argument list in calls, pipelined on one
// pooled connection (one round trip on a single Redis; on a cluster, see
// cluster.go), and returns each call's reply and error. A call answered
// NOSCRIPT (Redis forgot the script) is run again alone, through EVAL. A
// lost connection is retried once, as in do; err is a failure of the whole
// pipeline.
func (p *Presence) doEach(ctx context.Context, s *redis.Script, calls [][]any) ([]any, []error, error) {
	replies, errs, err := p.doEachOnce(ctx, s, calls)
	if err != nil && isConnLost(err) && ctx.Err() == nil {
		replies, errs, err = p.doEachOnce(ctx, s, calls)
	}
	if err != nil {
		return nil, nil, p.failure(err)
	}
	p.answered()
	for i, e := range errs {
		switch {
		case e == nil:
		case strings.HasPrefix(e.Error(), "NOSCRIPT"):
			replies[i], errs[i] = p.do(ctx, s, calls[i]...)
		default:
			errs[i] = p.failure(e)
		}
	}
	return replies, errs, nil
}

func (p *Presence) doEachOnce(ctx context.Context, s *redis.Script, calls [][]any) ([]any, []error, error) {
	start := time.Now()
	c, err := p.pool.GetContext(ctx)
	if err != nil {
		p.metrics.redisError("get")
		return nil, nil, err
	}
	defer c.Close()
	for _, args := range calls {
		if err := p.script(s).SendHash(c, args...); err != nil {
			return nil, nil, err
		}
	}
	if err := c.Flush(); err != nil {
		return nil, nil, err
	}
	replies, errs := make([]any, len(calls)), make([]error, len(calls))
	for i := range calls {
		replies[i], errs[i] = redis.ReceiveContext(c, ctx)
		if errs[i] != nil && c.Err() != nil { // the connection failed, not the call
			p.metrics.redisError("do")
			return nil, nil, errs[i]
		}
	}
	p.metrics.redisRoundTrip(time.Since(start))
	return replies, errs, nil
}

// answered records that Redis just answered a call.
func (p *Presence) answered() { p.lastAnswer.Store(int64(time.Since(p.born))) }

// failure classifies err from a Redis call by how recently Redis answered
// (see redisFailure).
func (p *Presence) failure(err error) error {
	return redisFailure(err, time.Since(p.born)-time.Duration(p.lastAnswer.Load()))
}

// lookback and keyTTL in milliseconds, as the scripts take them. A key lives
// a TTL past its deadline, so it is never gone before the reaper removes it.
func (p *Presence) lookbackMs() int64 { return p.opts.ReaperLookback.Milliseconds() }
func (p *Presence) keyTTLMs() int64 {
	return p.opts.ReaperLookback.Milliseconds() + p.opts.TTL.Milliseconds()
}

// beforeLast inserts more into a script's arguments before the last one,
// the history setting that roomArgs puts last.
func beforeLast(args []any, more ...any) []any {
	last := args[len(args)-1]
	return append(append(args[:len(args)-1], more...), last)
}
