package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/gomodule/redigo/redis"
)

// How a member sees a large room (PROTOCOL.md revision 3): its events each,
// batched, counted or not at all (the hub delivers them, hub_batch.go), a
// snapshot in full, as counts or as a first page, and presence:members,
// pages of the room's connections in a stable order.

// eventModes are the values of presence:join's events option.
var eventModes = map[string]eventMode{"each": modeEach, "batched": modeBatched, "count": modeCount, "none": modeNone}

// parseEventMode reads the optional events field: how the socket receives
// the room's events (PROTOCOL.md revision 3). Absent: each.
func parseEventMode(o object) (eventMode, error) {
	if !o.has("events") {
		return modeEach, nil
	}
	var v string
	mode, ok := modeEach, false
	if json.Unmarshal(o["events"], &v) == nil {
		mode, ok = eventModes[v]
	}
	if !ok {
		return 0, invalid(`events must be "each", "batched", "count" or "none"`)
	}
	return mode, nil
}

// Member pages: their default and largest size.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// parseSnapshotMode reads the optional snapshot and pageSize fields of a
// join or sync: "full" (the default), "count" (seq and counts, no lists) or
// "page" (the first pageSize connections; PROTOCOL.md revision 3).
func parseSnapshotMode(o object) (mode string, pageSize int64, err error) {
	mode, pageSize = "full", defaultPageSize
	if o.has("snapshot") {
		if json.Unmarshal(o["snapshot"], &mode) != nil || mode != "full" && mode != "count" && mode != "page" {
			return "", 0, invalid(`snapshot must be "full", "count" or "page"`)
		}
	}
	if size, ok, err := o.integer("pageSize"); err != nil || ok && (size < 1 || size > maxPageSize) {
		return "", 0, invalid("pageSize must be an integer from 1 to 1000")
	} else if ok {
		pageSize = size
	}
	return mode, pageSize, nil
}

// handleMembers implements presence:members: a page of the room's
// connections in a stable order, after the connId of "after".
func (p *Presence) handleMembers(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	after := ""
	if o.has("after") {
		if json.Unmarshal(o["after"], &after) != nil || !validConnID(after) {
			return nil, invalid("after must be a connId")
		}
	}
	limit, ok, err := o.integer("limit")
	if err != nil || ok && (limit < 1 || limit > maxPageSize) {
		return nil, invalid("limit must be an integer from 1 to 1000")
	}
	if !ok {
		limit = defaultPageSize
	}
	room, _, connID := p.conn(s).get()
	if room == "" {
		return nil, errNotJoined
	}
	pg, err := redis.String(p.do(ctx, pageScript, p.connArgs(room, s.id, connID, after, limit)...))
	if errors.Is(err, redis.ErrNil) {
		p.forget(s, room)
		return nil, errNotJoined
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(`{"page":` + pg + `}`), nil
}
