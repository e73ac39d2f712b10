package main

import (
	"context"
	"encoding/json"
	"unicode/utf8"
)

// Chat is the example module: chat:message of PROTOCOL.md. It is the
// template to copy for a module of your own: a constructor taking what the
// module depends on, Name, and Register attaching handlers with
// ModuleContext.Handle, which takes care of the acknowledgement format,
// deadlines, rate limits and panics.
type Chat struct {
	presence *Presence
	mc       *ModuleContext
}

var _ Module = (*Chat)(nil)

// maxChatRunes is the longest message, in Unicode code points.
const maxChatRunes = 2000

// NewChat returns the chat module. Messages go to the sender's presence room.
func NewChat(p *Presence) *Chat { return &Chat{presence: p} }

// Name implements Module.
func (c *Chat) Name() string { return "chat" }

// Register implements Module.
func (c *Chat) Register(mc *ModuleContext) error {
	c.mc = mc
	mc.Handle("chat:message", c.handleMessage)
	return nil
}

// chatMessage is what every socket in the room receives.
type chatMessage struct {
	ID     string `json:"id"`
	RoomID string `json:"roomId"`
	UserID string `json:"userId"`
	ConnID string `json:"connId"`
	Text   string `json:"text"`
	TS     int64  `json:"ts"`
}

// handleMessage validates the text, checks in Redis that the sender still
// holds its presence connection (a socket fenced off by a resume gets
// not_joined), and publishes the message to the room on every node.
func (c *Chat) handleMessage(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	var text string
	if !o.has("text") || json.Unmarshal(o["text"], &text) != nil {
		return nil, invalid("text must be a string")
	}
	if n := utf8.RuneCountInString(text); n < 1 || n > maxChatRunes {
		return nil, invalid("text must be 1 to 2000 characters")
	}
	m, err := c.presence.Member(ctx, s)
	if err != nil {
		return nil, err
	}
	msg := chatMessage{ID: newID(), RoomID: m.RoomID, UserID: m.UserID, ConnID: m.ConnID, Text: text, TS: m.TS}
	// Recorded: the message takes its place in the room's sequence and
	// history, so a client that comes back recovers it (PROTOCOL.md).
	if err := c.mc.To(m.RoomID).Recorded().Emit(ctx, "chat:message", msg); err != nil {
		return nil, err
	}
	return map[string]any{"id": msg.ID, "ts": msg.TS}, nil
}
