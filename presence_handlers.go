package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/gomodule/redigo/redis"
)

// The presence:* event handlers: join (with resume and recovery), heartbeat
// (with a state patch), sync and leave. The module's lifecycle, its
// options and what other modules call are in presence.go.

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
	snapMode, pageSize, from, err := parseView(o)
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
	snapMode, pageSize, from, err := parseView(o)
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

// parseView reads the fields of presence:join and presence:sync that say
// what view the client asks for: its snapshot (snapshot, pageSize) and the
// position it recovers from (since).
func parseView(o object) (snapMode string, pageSize int64, from *since, err error) {
	if snapMode, pageSize, err = parseSnapshotMode(o); err != nil {
		return "", 0, nil, err
	}
	from, err = parseSince(o)
	return snapMode, pageSize, from, err
}
