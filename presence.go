package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// PresenceOptions configures presence. Zero values take the defaults given.
type PresenceOptions struct {
	// Prefix starts every Redis key and the events channel. Zero value: "prs:".
	Prefix string
	// TTL is the heartbeat window: clients heartbeat well within it, and a
	// gracefully stopped node gives its connections this long to resume
	// elsewhere. Zero value: 30 s.
	TTL time.Duration
	// ReaperInterval is how often each node's reaper looks for due
	// connections. Zero value: 3 s.
	ReaperInterval time.Duration
	// ReaperLookback is how old a connection's last heartbeat may get before
	// the reaper removes it as expired. Zero value: 2 × TTL.
	ReaperLookback time.Duration
	// DisconnectGrace is how long a dropped socket's connection stays for a
	// resume. Zero value: 5 s; negative: removed at once.
	DisconnectGrace time.Duration
	// MaxStateBytes bounds a connection's merged state as compact JSON.
	// Zero value: 4096.
	MaxStateBytes int
	// OpTimeout bounds each Redis operation of a handler. Zero value: 3 s.
	OpTimeout time.Duration
	// MaxSnapshot caps the connections a full snapshot lists: a room with
	// more answers the first MaxSnapshot of them, marked truncated, with
	// the connId to page on from (presence:members). Zero value: no cap.
	MaxSnapshot int
	// BatchInterval is the tick at which members that asked for batched
	// events or counts receive them. Zero value: 200 ms.
	BatchInterval time.Duration
	// History bounds each room's history, from which returning clients
	// recover what they missed (history.go).
	History HistoryOptions
}

// withDefaults returns o with the zero values replaced by defaults.
func (o PresenceOptions) withDefaults() PresenceOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Prefix == "" {
		o.Prefix = "prs:"
	}
	def(&o.TTL, 30*time.Second)
	def(&o.ReaperInterval, 3*time.Second)
	def(&o.ReaperLookback, 2*o.TTL)
	def(&o.DisconnectGrace, 5*time.Second)
	def(&o.OpTimeout, 3*time.Second)
	def(&o.BatchInterval, 200*time.Millisecond)
	o.History = o.History.withDefaults()
	if o.MaxStateBytes == 0 {
		o.MaxStateBytes = 4096
	}
	return o
}

// Presence is the built-in presence module: the presence:* events of
// PROTOCOL.md, the disconnect grace, the heartbeat batcher and the reaper.
// Its methods are safe for concurrent use.
type Presence struct {
	opts    PresenceOptions
	pool    *redis.Pool
	hub     *hub
	log     *slog.Logger
	metrics *metrics
	spawn   func(func())
	beats   chan *beat

	born       time.Time    // origin of lastAnswer
	lastAnswer atomic.Int64 // when Redis last answered, as a duration since born
	// sharded is set once Redis refused a script whose keys span buckets
	// (CROSSSLOT: a cluster); the reaper then queries bucket by bucket.
	sharded atomic.Bool
	// shardChannels: events are published with SPUBLISH (Redis 7+; see
	// pubsub.go), else with PUBLISH.
	shardChannels atomic.Bool
}

var (
	_ Module            = (*Presence)(nil)
	_ ConnectionHandler = (*Presence)(nil)
	_ Runner            = (*Presence)(nil)
)

// NewPresence returns the presence module. It is attached to a server with
// Server.Use, which supplies Redis, the logger and the local event routing.
func NewPresence(opts PresenceOptions) (*Presence, error) {
	o := opts.withDefaults()
	if o.ReaperLookback < o.TTL {
		return nil, errors.New("presence: reaper lookback must be at least the TTL")
	}
	if o.TTL < time.Second || o.ReaperInterval < 10*time.Millisecond {
		return nil, errors.New("presence: TTL must be at least 1 s and the reaper interval at least 10 ms")
	}
	if o.BatchInterval < 10*time.Millisecond {
		return nil, errors.New("presence: the batch interval must be at least 10 ms")
	}
	return &Presence{opts: o, beats: make(chan *beat, maxBeatQueue), born: time.Now()}, nil
}

// Name implements Module.
func (p *Presence) Name() string { return "presence" }

// Register implements Module: it takes the server's Redis pool, logger and
// hub, and attaches the presence:* handlers.
func (p *Presence) Register(mc *ModuleContext) error {
	p.pool, p.hub, p.log, p.metrics, p.spawn = mc.Redis, mc.hub, mc.Logger, mc.metrics, mc.Go
	mc.Handle("presence:join", p.handleJoin)
	mc.Handle("presence:heartbeat", p.handleHeartbeat)
	mc.Handle("presence:sync", p.handleSync)
	mc.Handle("presence:leave", p.handleLeave)
	mc.Handle("presence:members", p.handleMembers)
	p.hub.onGone = func(s *Socket, room, connID string) { p.conn(s).clearIf(room, connID) }
	return nil
}

// Run implements Runner: the reaper, the heartbeat batcher and the flush of
// batched events (hub.runBatches), until ctx
// ends. It first loads the scripts, so that the first calls, however many
// at once, need not fall back from EVALSHA to sending the script (redigo's
// fallback still covers a Redis that restarted and forgot them).
func (p *Presence) Run(ctx context.Context) {
	if err := p.loadScripts(ctx); err != nil {
		p.log.Warn("presence scripts not preloaded", "err", err)
	}
	done := make(chan struct{}, 2)
	go func() { // owned by Run, which waits for it
		defer func() { done <- struct{}{} }()
		p.runBeats(ctx)
	}()
	go func() { // owned by Run, which waits for it
		defer func() { done <- struct{}{} }()
		p.hub.runBatches(ctx, p.opts.BatchInterval)
	}()
	p.runReaper(ctx)
	<-done
	<-done
}

// loadScripts loads every presence script into Redis.
func (p *Presence) loadScripts(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.OpTimeout)
	defer cancel()
	c, err := p.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range presenceScripts {
		if err := p.script(s).Load(c); err != nil {
			return err
		}
	}
	return nil
}

// OnConnect implements ConnectionHandler: the socket gets its (empty)
// presence connection.
func (p *Presence) OnConnect(s *Socket) { s.Set(presenceKey{}, &presenceConn{}) }

// OnDisconnect implements ConnectionHandler: the socket's connection stays for
// the disconnect grace (the full TTL when this node is shutting down) unless a
// resume takes it over first. It returns at once; the Redis work runs on a
// goroutine the server waits for.
func (p *Presence) OnDisconnect(s *Socket) {
	room, connID := p.conn(s).markClosed()
	if room != "" {
		p.spawn(func() { p.disconnect(s, room, connID) })
	}
}

func (p *Presence) disconnect(s *Socket, room, connID string) {
	grace, reason, kind := max(p.opts.DisconnectGrace, 0), "disconnect", "grace"
	if s.shutdown.Load() {
		grace, reason, kind = p.opts.TTL, "expired", "shutdown"
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.OpTimeout)
	defer cancel()
	_, err := p.do(ctx, disconnectScript, p.connArgs(room, s.id, connID,
		grace.Milliseconds(), reason, p.opts.TTL.Milliseconds(), kind)...)
	if err != nil {
		p.log.Warn("disconnect not recorded; the connection will expire", "room", room, "conn", connID, "err", err)
	}
}

// resync runs after the subscription of buckets came back from a gap: it
// reads the seq of every room of theirs with joined sockets here, in one
// pipelined round trip, and lets the hub tell the sockets of each room that moved while the
// node was deaf (hub.resyncRoom). The subscriber calls it; events flow
// meanwhile.
func (p *Presence) resync(ctx context.Context, buckets []int) {
	rooms, gens := p.hub.joinedRooms(buckets)
	if len(rooms) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.OpTimeout)
	defer cancel()
	seqs, err := p.roomSeqs(ctx, rooms)
	if err != nil {
		p.log.Warn("resync after the subscription gap failed; clients learn of missed events at the next one",
			"rooms", len(rooms), "err", err)
		return
	}
	told := 0
	for i, room := range rooms {
		told += p.hub.resyncRoom(room, seqs[i], gens[i])
	}
	p.log.Info("resync after the subscription gap", "rooms", len(rooms), "sockets", told)
}

// roomSeqs returns the current seq of each room (0 for a room Redis does not
// have), in one pipelined round trip.
func (p *Presence) roomSeqs(ctx context.Context, rooms []string) ([]int64, error) {
	c, err := p.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	for _, room := range rooms {
		if err := c.Send("GET", p.roomTag(room)+"seq"); err != nil {
			return nil, err
		}
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	seqs := make([]int64, len(rooms))
	for i := range rooms {
		r, err := redis.ReceiveContext(c, ctx)
		if seqs[i], err = redis.Int64(r, err); err != nil && !errors.Is(err, redis.ErrNil) {
			return nil, err
		}
	}
	return seqs, nil
}

// Snapshot returns the room's current snapshot as JSON, for the HTTP API.
func (p *Presence) Snapshot(ctx context.Context, room string) (json.RawMessage, error) {
	snap, err := redis.Bytes(p.do(ctx, snapshotScript, p.roomArgs(room, "", nil)...))
	return snap, err
}

// Member returns the socket's presence connection after checking in Redis
// that the socket still owns it: not_joined when it has not joined, or its
// connection expired or was taken over by a resume. Modules use it to act
// on behalf of a member (chat.go).
func (p *Presence) Member(ctx context.Context, s *Socket) (Member, error) {
	room, _, connID := p.conn(s).get()
	if room == "" {
		return Member{}, errNotJoined
	}
	m, err := p.member(ctx, s, room, connID)
	if errors.Is(err, errNotJoined) {
		p.forget(s, room)
	}
	return m, err
}

func (p *Presence) member(ctx context.Context, s *Socket, room, connID string) (Member, error) {
	r, err := redis.Strings(p.do(ctx, memberScript, p.connKey(room, connID), s.id))
	if errors.Is(err, redis.ErrNil) {
		return Member{}, errNotJoined
	}
	if err != nil || len(r) != 2 {
		return Member{}, fmt.Errorf("presence member: %w", err)
	}
	ts, _ := strconv.ParseInt(r[1], 10, 64)
	return Member{RoomID: room, UserID: r[0], ConnID: connID, TS: ts}, nil
}
