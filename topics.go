package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Topics is the second example module, built only on the exported module
// API: clients subscribe to topics (topic:subscribe, topic:unsubscribe of
// PROTOCOL.md), a token's rooms claim says which they may, and backends
// publish to them over HTTP (POST /v1/topics/{topic}/publish); every
// subscribed socket, on any node, receives topic:message. A topic is a room
// named "topic:<topic>", so topics never mix with presence rooms.
type Topics struct {
	mc *ModuleContext
}

var _ Module = (*Topics)(nil)

// Topic limits.
const (
	maxTopicBytes     = 100 // a topic's name, so that its room name is an id
	maxTopicsPerSock  = 64  // subscriptions of one socket
	topicRoomPrefix   = "topic:"
	topicPublishRoute = "POST /v1/topics/{topic}/publish"
)

// NewTopics returns the topics module.
func NewTopics() *Topics { return &Topics{} }

// Name implements Module: "topic", the namespace of its events.
func (t *Topics) Name() string { return "topic" }

// Register implements Module.
func (t *Topics) Register(mc *ModuleContext) error {
	t.mc = mc
	mc.Handle("topic:subscribe", t.handleSubscribe)
	mc.Handle("topic:unsubscribe", t.handleUnsubscribe)
	mc.HandleAPI(topicPublishRoute, t.servePublish)
	return nil
}

// topicOf reads and checks the payload's topic.
func topicOf(raw json.RawMessage) (string, error) {
	p, err := DecodePayload(raw)
	if err != nil {
		return "", err
	}
	topic, err := p.ID("topic")
	if err == nil && len(topic) > maxTopicBytes {
		err = InvalidPayload("topic must be at most 100 bytes")
	}
	return topic, err
}

// handleSubscribe implements topic:subscribe: the socket joins the topic's
// room once its token (if any) grants the topic, and hears it from the ack
// on.
func (t *Topics) handleSubscribe(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
	topic, err := topicOf(raw)
	if err != nil {
		return nil, err
	}
	if c := s.Claims(); c != nil && !c.Allows(topic) {
		return nil, Forbidden("the token does not grant this topic")
	}
	n := 0
	for _, r := range s.Rooms() {
		if r == topicRoomPrefix+topic {
			return map[string]any{"topic": topic}, nil
		}
		if strings.HasPrefix(r, topicRoomPrefix) {
			n++
		}
	}
	if n >= maxTopicsPerSock {
		return nil, Forbidden("a socket may subscribe to at most 64 topics")
	}
	if err := s.Join(ctx, topicRoomPrefix+topic); err != nil {
		s.Leave(topicRoomPrefix + topic)
		return nil, err
	}
	return map[string]any{"topic": topic}, nil
}

// handleUnsubscribe implements topic:unsubscribe.
func (t *Topics) handleUnsubscribe(_ context.Context, s *Socket, raw json.RawMessage) (any, error) {
	topic, err := topicOf(raw)
	if err != nil {
		return nil, err
	}
	return map[string]any{"removed": s.Leave(topicRoomPrefix + topic)}, nil
}

// topicMessage is what subscribers receive.
type topicMessage struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	TS    int64           `json:"ts"`
}

// servePublish answers POST /v1/topics/{topic}/publish with body
// {"data": <any JSON>}: 200 {"ok":true} once published, 400 for a bad topic
// or body, 413 over MAX_MESSAGE_BYTES, 503 when Redis is unreachable.
func (t *Topics) servePublish(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if !ValidID(topic) || len(topic) > maxTopicBytes {
		WriteAPIError(w, http.StatusBadRequest, "invalid topic")
		return
	}
	var body struct {
		Data json.RawMessage `json:"data"`
	}
	if !t.mc.ReadAPIBody(w, r, &body) {
		return
	}
	if len(body.Data) == 0 {
		body.Data = json.RawMessage("null")
	}
	msg := topicMessage{Topic: topic, Data: body.Data, TS: time.Now().UnixMilli()}
	t.mc.AnswerAPI(w, r, func(ctx context.Context) error {
		return t.mc.To(topicRoomPrefix+topic).Emit(ctx, "topic:message", msg)
	})
}
