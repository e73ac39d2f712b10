package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Names of the events of the application protocol (PROTOCOL.md).
const (
	// EventPresence is the name of the presence events the server sends.
	EventPresence = "presence:event"
	// EventChat is the name of the chat event, in both directions.
	EventChat = "chat:message"

	eventJoin      = "presence:join"
	eventHeartbeat = "presence:heartbeat"
	eventLeave     = "presence:leave"
	eventSync      = "presence:sync"
)

// AckError is a failure acknowledgement, {ok:false,error:{code,message}}.
// Code is one of the wire codes of PROTOCOL.md (invalid_payload, not_joined,
// stale_epoch, ...).
type AckError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns "code: message".
func (e *AckError) Error() string { return e.Code + ": " + e.Message }

// Self identifies the caller's own connection in a room.
type Self struct {
	ConnID string `json:"connId"`
	Epoch  int64  `json:"epoch"`
}

// Connection is one connection listed in a snapshot.
type Connection struct {
	ConnID     string          `json:"connId"`
	UserID     string          `json:"userId"`
	State      json.RawMessage `json:"state"`
	Epoch      int64           `json:"epoch"`
	LastSeenMs int64           `json:"lastSeenMs"`
}

// Snapshot is a room's presence as of event number Seq.
type Snapshot struct {
	RoomID      string       `json:"roomId"`
	Seq         int64        `json:"seq"`
	Members     []string     `json:"members"`
	Connections []Connection `json:"connections"`
	// Count is set in a counts-only snapshot (JoinRequest.Snapshot "count"),
	// which has no Members or Connections, and in a page.
	Count *Count `json:"count,omitempty"`
	// Next is set in a page (JoinRequest.Snapshot "page", Members, a
	// truncated full snapshot) that is not the last: the connId to page on
	// from.
	Next *string `json:"next,omitempty"`
	// Truncated marks a full snapshot cut at the server's cap: it is the
	// first page.
	Truncated bool `json:"truncated,omitempty"`
}

// JoinRequest is the payload of presence:join. State, when not nil, must
// encode to a JSON object; Resume takes over a previous connection.
type JoinRequest struct {
	RoomID string `json:"roomId"`
	UserID string `json:"userId"`
	State  any    `json:"state,omitempty"`
	Resume *Self  `json:"resume,omitempty"`
	// Events is how the socket receives the room's events: "each" (the
	// default), "batched" (presence:batch), "count" (presence:count) or
	// "none".
	Events string `json:"events,omitempty"`
	// Snapshot is what the ack's snapshot holds: "full" (the default),
	// "count" or "page" (the first PageSize connections).
	Snapshot string `json:"snapshot,omitempty"`
	PageSize int    `json:"pageSize,omitempty"`
	// Since is the position the client saw last (revision 3, recovery):
	// the server replays what the room sent after it when its history
	// reaches back, and says so in JoinAck.Recovered.
	Since *Since `json:"since,omitempty"`
}

// Since is a position in a room's sequence, within a history epoch: a
// presence event's seq (Sub 0), or a recorded module message's seq and sub.
type Since struct {
	Seq   int64  `json:"seq"`
	Sub   int64  `json:"sub,omitempty"`
	Epoch string `json:"epoch"`
}

// Members returns a page of the room's connections (presence:members), in
// a stable order: the first with after "", then from the previous page's
// Next. limit 0 is the server's default.
func (c *Conn) Members(ctx context.Context, after string, limit int) (*Snapshot, error) {
	req := map[string]any{}
	if after != "" {
		req["after"] = after
	}
	if limit > 0 {
		req["limit"] = limit
	}
	var ack struct {
		Page Snapshot `json:"page"`
	}
	if err := c.request(ctx, "presence:members", req, &ack); err != nil {
		return nil, err
	}
	return &ack.Page, nil
}

// JoinAck is the successful reply to presence:join.
type JoinAck struct {
	Self     Self     `json:"self"`
	Snapshot Snapshot `json:"snapshot"`
	// History is there when the server keeps room histories: its epoch
	// goes with the positions the client passes as JoinRequest.Since.
	History *struct {
		Epoch string `json:"epoch"`
	} `json:"history,omitempty"`
	// Recovered answers a join with Since: true when the Replayed events
	// the room sent after that position came before the ack (the snapshot
	// then holds counts only), false when the snapshot is a fresh one.
	Recovered *bool `json:"recovered,omitempty"`
	Replayed  int   `json:"replayed,omitempty"`
}

// HeartbeatRequest is the payload of presence:heartbeat. A nil Epoch is not
// sent; PatchState is shallow-merged into the state (a nil value deletes a key).
type HeartbeatRequest struct {
	Epoch      *int64         `json:"epoch,omitempty"`
	PatchState map[string]any `json:"patchState,omitempty"`
}

// HeartbeatAck is the successful reply to presence:heartbeat.
type HeartbeatAck struct {
	Epoch   int64 `json:"epoch"`
	Changed bool  `json:"changed"`
}

// Count is a room's size right after a change.
type Count struct {
	Connections int `json:"connections"`
	Members     int `json:"members"`
}

// PresenceEvent is the argument of a presence:event: Type is "join",
// "update" or "leave"; Reason ("leave", "disconnect", "expired") is set on
// leave events only.
type PresenceEvent struct {
	Type       string          `json:"type"`
	RoomID     string          `json:"roomId"`
	Seq        int64           `json:"seq"`
	UserID     string          `json:"userId"`
	ConnID     string          `json:"connId"`
	State      json.RawMessage `json:"state,omitempty"`
	Epoch      int64           `json:"epoch,omitempty"`
	TS         int64           `json:"ts"`
	Reason     string          `json:"reason,omitempty"`
	UserJoined bool            `json:"userJoined,omitempty"`
	UserLeft   bool            `json:"userLeft,omitempty"`
	Count      Count           `json:"count"`
}

// ChatMessage is the argument of a chat:message sent by the server.
type ChatMessage struct {
	ID     string `json:"id"`
	RoomID string `json:"roomId"`
	UserID string `json:"userId"`
	ConnID string `json:"connId"`
	Text   string `json:"text"`
	TS     int64  `json:"ts"`
	// Seq and Sub are the message's position in the room's sequence
	// (revision 3): the seq of the presence event before it and its number
	// after that event, from 1.
	Seq int64 `json:"seq,omitempty"`
	Sub int64 `json:"sub,omitempty"`
}

// empty is the payload of requests that carry none.
type empty struct{}

// Join sends presence:join. A refusal is returned as an *AckError.
func (c *Conn) Join(ctx context.Context, req JoinRequest) (*JoinAck, error) {
	var ack JoinAck
	if err := c.request(ctx, eventJoin, req, &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

// Heartbeat sends presence:heartbeat. A refusal is returned as an *AckError.
func (c *Conn) Heartbeat(ctx context.Context, req HeartbeatRequest) (*HeartbeatAck, error) {
	var ack HeartbeatAck
	if err := c.request(ctx, eventHeartbeat, req, &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

// Leave sends presence:leave and reports whether a connection was removed.
func (c *Conn) Leave(ctx context.Context) (removed bool, err error) {
	var ack struct {
		Removed bool `json:"removed"`
	}
	if err := c.request(ctx, eventLeave, empty{}, &ack); err != nil {
		return false, err
	}
	return ack.Removed, nil
}

// Sync sends presence:sync and returns the room's current snapshot.
func (c *Conn) Sync(ctx context.Context) (*Snapshot, error) {
	var ack struct {
		Snapshot Snapshot `json:"snapshot"`
	}
	if err := c.request(ctx, eventSync, empty{}, &ack); err != nil {
		return nil, err
	}
	return &ack.Snapshot, nil
}

// SyncAck is the reply to presence:sync with a position (SyncSince).
type SyncAck struct {
	Snapshot Snapshot `json:"snapshot"`
	History  *struct {
		Epoch string `json:"epoch"`
	} `json:"history,omitempty"`
	Recovered bool `json:"recovered"`
	Replayed  int  `json:"replayed"`
}

// SyncSince sends presence:sync with the position the client saw last
// (revision 3, what a client answers presence:resync with): when the room's
// history reaches back, the events after it arrive before the reply and
// Recovered is true; otherwise the snapshot is a fresh one.
func (c *Conn) SyncSince(ctx context.Context, since Since) (*SyncAck, error) {
	var ack SyncAck
	if err := c.request(ctx, eventSync, map[string]any{"since": since}, &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

// Chat sends a chat:message to the caller's room and returns the message id
// and timestamp chosen by the server.
func (c *Conn) Chat(ctx context.Context, text string) (id string, ts int64, err error) {
	req := struct {
		Text string `json:"text"`
	}{text}
	var ack struct {
		ID string `json:"id"`
		TS int64  `json:"ts"`
	}
	if err := c.request(ctx, EventChat, req, &ack); err != nil {
		return "", 0, err
	}
	return ack.ID, ack.TS, nil
}

// request calls event with payload and decodes the acknowledgement into ack.
func (c *Conn) request(ctx context.Context, event string, payload, ack any) error {
	raw, err := c.Call(ctx, event, payload)
	if err != nil {
		return err
	}
	if err := decodeAck(raw, ack); err != nil {
		var ae *AckError
		if errors.As(err, &ae) {
			return ae
		}
		return fmt.Errorf("client: %s: %w", event, err)
	}
	return nil
}

// decodeAck reads an acknowledgement object: on ok:true it decodes raw into
// into (when not nil); on ok:false it returns the *AckError; anything else is
// a plain error saying the ack is malformed.
func decodeAck(raw json.RawMessage, into any) error {
	var head struct {
		OK    *bool     `json:"ok"`
		Error *AckError `json:"error"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("malformed ack %.200s: %w", raw, err)
	}
	switch {
	case head.OK == nil:
		return fmt.Errorf("malformed ack %.200s: no ok field", raw)
	case !*head.OK && (head.Error == nil || head.Error.Code == ""):
		return fmt.Errorf("malformed ack %.200s: ok:false without error code", raw)
	case !*head.OK:
		return head.Error
	case into == nil:
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("malformed ack %.200s: %w", raw, err)
	}
	return nil
}

// ParsePresenceEvent decodes a presence:event received from the server.
func ParsePresenceEvent(e Event) (*PresenceEvent, error) {
	var p PresenceEvent
	if err := parseArg(e, EventPresence, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ParseChatMessage decodes a chat:message received from the server.
func ParseChatMessage(e Event) (*ChatMessage, error) {
	var m ChatMessage
	if err := parseArg(e, EventChat, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// parseArg checks the event's name and decodes its first argument into v.
func parseArg(e Event, name string, v any) error {
	if e.Name != name {
		return fmt.Errorf("client: event %q is not %s", e.Name, name)
	}
	if len(e.Args) == 0 {
		return fmt.Errorf("client: %s without argument", name)
	}
	if err := json.Unmarshal(e.Args[0], v); err != nil {
		return fmt.Errorf("client: %s: %w", name, err)
	}
	return nil
}

// PresenceBatch is a presence:batch event: a room's events of one tick.
type PresenceBatch struct {
	RoomID string          `json:"roomId"`
	Events []PresenceEvent `json:"events"`
}

// PresenceCount is a presence:count event: a room's count after seq.
type PresenceCount struct {
	RoomID string `json:"roomId"`
	Seq    int64  `json:"seq"`
	Count  Count  `json:"count"`
}

// ParsePresenceBatch decodes a presence:batch event.
func ParsePresenceBatch(e Event) (*PresenceBatch, error) {
	var b PresenceBatch
	if err := parseArg(e, "presence:batch", &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// ParsePresenceCount decodes a presence:count event.
func ParsePresenceCount(e Event) (*PresenceCount, error) {
	var c PresenceCount
	if err := parseArg(e, "presence:count", &c); err != nil {
		return nil, err
	}
	return &c, nil
}
