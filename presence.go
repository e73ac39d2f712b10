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

// handleJoin implements presence:join.
func (p *Presence) handleJoin(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	room, err := o.id("roomId")
	if err != nil {
		return nil, err
	}
	userID, err := o.id("userId")
	if err != nil {
		return nil, err
	}
	fields, err := o.stateFields("state")
	if err != nil {
		return nil, err
	}
	resumeID, resumeEpoch, err := parseResume(o)
	if err != nil {
		return nil, err
	}
	mode, err := parseEventMode(o)
	if err != nil {
		return nil, err
	}
	snapMode, pageSize, err := parseSnapshotMode(o)
	if err != nil {
		return nil, err
	}
	from, err := parseSince(o)
	if err != nil {
		return nil, err
	}
	st := stateJSON(fields)
	if len(st) > p.opts.MaxStateBytes {
		return nil, tooLarge(fmt.Sprintf("state is %d bytes; the limit is %d", len(st), p.opts.MaxStateBytes))
	}
	if err := s.claims.allows(userID, room); err != nil {
		return nil, err
	}
	if err := p.checkNotJoined(ctx, s); err != nil {
		return nil, err
	}

	args := p.joinArgs(room, s.id, newID(), resumeID, userID, jsonString(userID), st,
		p.lookbackMs(), p.keyTTLMs(), p.opts.MaxStateBytes, resumeID, resumeEpoch, snapMode, pageSize, p.opts.MaxSnapshot)
	for _, f := range fields {
		if resumeID != "" || f.val != "" { // a resume merges like a patch; a join drops nulls
			args = beforeLast(args, f.key, f.val)
		}
	}
	if from != nil {
		args[len(args)-1] = from.arg(p.historyArg())
	}
	p.hub.subscribe(s, room, mode)
	if err := p.hub.ready(ctx, room); err != nil {
		p.hub.unsubscribe(s, room)
		return nil, p.failure(err)
	}
	reply, err := redis.Values(p.do(ctx, joinScript, args...))
	if err == nil && len(reply) == 1 {
		err = tooLarge(fmt.Sprintf("merged state would exceed %d bytes", p.opts.MaxStateBytes))
	}
	if err != nil {
		p.hub.unsubscribe(s, room)
		return nil, err
	}
	var connID, epoch, snap string
	var minSeq int64
	jh, err := p.parseJoinHistory(reply[min(5, len(reply)):])
	if err == nil && from != nil {
		jh.from = from.at
	}
	if err == nil {
		_, err = redis.Scan(reply, &connID, &epoch, &snap, &minSeq)
	}
	if err != nil {
		p.hub.unsubscribe(s, room)
		return nil, fmt.Errorf("presence join: %w", err)
	}
	p.hub.activateWithHistory(s, room, connID, minSeq, jh)
	jh.count(p.metrics)
	if !p.conn(s).set(room, userID, connID) {
		p.hub.unsubscribe(s, room) // the socket went away while joining
		p.spawn(func() { p.disconnect(s, room, connID) })
	} else if s.claims == nil {
		_ = s.SetUser(ctx, userID) // without tokens, the join says who the socket is
	}
	if reply[4] == int64(0) {
		p.metrics.event("join", 1)
	}
	return json.RawMessage(`{"self":{"connId":"` + connID + `","epoch":` + epoch + `},"snapshot":` + snap +
		jh.ackFields() + `}`), nil
}

// parseResume reads the optional resume field. A connId that newID cannot
// have made matches nothing, so the join proceeds as a fresh one.
func parseResume(o object) (connID string, epoch string, err error) {
	if !o.has("resume") {
		return "", "", nil
	}
	r, err := decodeObject(o["resume"])
	if err != nil || !r.has("connId") || !r.has("epoch") {
		return "", "", invalid("resume must be an object with connId and epoch")
	}
	if err := json.Unmarshal(r["connId"], &connID); err != nil {
		return "", "", invalid("resume.connId must be a string")
	}
	ep, _, err := r.integer("epoch")
	if err != nil {
		return "", "", invalid("resume.epoch must be a non-negative integer")
	}
	if !validConnID(connID) {
		return "", "", nil
	}
	return connID, strconv.FormatInt(ep, 10), nil
}

// checkNotJoined answers already_joined when the socket still owns a
// presence connection. A connection that is gone (expired, taken over, lost
// with Redis's data) no longer counts: the socket may join again.
func (p *Presence) checkNotJoined(ctx context.Context, s *Socket) error {
	room, _, connID := p.conn(s).get()
	if room == "" {
		return nil
	}
	if _, err := p.member(ctx, s, room, connID); !errors.Is(err, errNotJoined) {
		if err == nil {
			return errAlreadyJoined
		}
		return err
	}
	p.forget(s, room)
	return nil
}

// forget clears the socket's presence connection after finding it gone.
func (p *Presence) forget(s *Socket, room string) {
	p.conn(s).set("", "", "")
	p.hub.unsubscribe(s, room)
}

// handleHeartbeat implements presence:heartbeat.
func (p *Presence) handleHeartbeat(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	epoch, hasEpoch, err := o.integer("epoch")
	if err != nil {
		return nil, err
	}
	patch, err := o.stateFields("patchState")
	if err != nil {
		return nil, err
	}
	if !hasEpoch {
		epoch = -1
	}
	// payload_too_large outranks not_joined: a patch whose non-null values
	// alone exceed the limit is refused whatever it would merge into.
	if st := stateJSON(patch); len(st) > p.opts.MaxStateBytes {
		return nil, tooLarge(fmt.Sprintf("patchState is %d bytes; the limit is %d", len(st), p.opts.MaxStateBytes))
	}
	room, _, connID := p.conn(s).get()
	if room == "" {
		return nil, errNotJoined
	}
	var code, cur int64
	changed := false
	if len(patch) == 0 {
		code, cur, err = p.beat(ctx, s, room, connID, epoch)
	} else {
		code, cur, changed, err = p.patch(ctx, s, room, connID, epoch, patch)
	}
	if err != nil {
		return nil, err
	}
	switch code {
	case 1:
		p.forget(s, room)
		return nil, errNotJoined
	case 2:
		return nil, errStaleEpoch
	case 3:
		return nil, tooLarge(fmt.Sprintf("merged state would exceed %d bytes", p.opts.MaxStateBytes))
	}
	return json.RawMessage(`{"epoch":` + strconv.FormatInt(cur, 10) + `,"changed":` + strconv.FormatBool(changed) + `}`), nil
}

// patch runs a heartbeat that carries patchState.
func (p *Presence) patch(ctx context.Context, s *Socket, room, connID string, epoch int64, patch []field) (code, cur int64, changed bool, err error) {
	for _, f := range patch {
		if len(f.key)+len(f.val) > p.opts.MaxStateBytes {
			return 3, 0, false, nil
		}
	}
	args := p.connArgs(room, s.id, connID, epoch, p.lookbackMs(), p.keyTTLMs(), p.opts.MaxStateBytes)
	for _, f := range patch {
		args = beforeLast(args, f.key, f.val)
	}
	r, err := redis.Int64s(p.do(ctx, patchScript, args...))
	if err != nil {
		return 0, 0, false, err
	}
	if len(r) != 3 {
		return 0, 0, false, fmt.Errorf("presence patch: reply has %d values", len(r))
	}
	if r[2] == 1 {
		p.metrics.event("update", 1)
	}
	return r[0], r[1], r[2] == 1, nil
}

// handleSync implements presence:sync.
func (p *Presence) handleSync(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	snapMode, pageSize, err := parseSnapshotMode(o)
	if err != nil {
		return nil, err
	}
	from, err := parseSince(o)
	if err != nil {
		return nil, err
	}
	room, _, connID := p.conn(s).get()
	if room == "" {
		return nil, errNotJoined
	}
	if from != nil {
		return p.syncSince(ctx, s, room, connID, from, snapMode, pageSize)
	}
	snap, err := redis.String(p.do(ctx, snapshotScript,
		p.connArgs(room, s.id, connID, snapMode, pageSize, p.opts.MaxSnapshot)...))
	if errors.Is(err, redis.ErrNil) {
		p.forget(s, room)
		return nil, errNotJoined
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(`{"snapshot":` + snap + `}`), nil
}

// Snapshot returns the room's current snapshot as JSON, for the HTTP API.
func (p *Presence) Snapshot(ctx context.Context, room string) (json.RawMessage, error) {
	snap, err := redis.Bytes(p.do(ctx, snapshotScript, p.roomArgs(room, "", nil)...))
	return snap, err
}

// handleLeave implements presence:leave.
func (p *Presence) handleLeave(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
	if _, err := decodeObject(raw); err != nil {
		return nil, err
	}
	room, _, connID := p.conn(s).get()
	if room == "" {
		return json.RawMessage(`{"removed":false}`), nil
	}
	seq, err := redis.Int64(p.do(ctx, leaveScript, p.connArgs(room, s.id, connID)...))
	if err != nil {
		return nil, err
	}
	p.conn(s).set("", "", "")
	if s.claims == nil {
		_ = s.SetUser(ctx, "")
	}
	if seq == 0 {
		p.hub.unsubscribe(s, room)
		return json.RawMessage(`{"removed":false}`), nil
	}
	p.hub.endAt(s, room, seq)
	p.metrics.event("leave", 1)
	return json.RawMessage(`{"removed":true}`), nil
}

// Member is a socket's verified presence connection.
type Member struct {
	RoomID, UserID, ConnID string
	// TS is the Redis clock, in milliseconds since the Unix epoch, at the check.
	TS int64
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
