package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// TopicMessage is a topic:message event (PROTOCOL.md, the topics module).
type TopicMessage struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	TS    int64           `json:"ts"`
}

// Subscribe subscribes the socket to topic (topic:subscribe).
func (c *Conn) Subscribe(ctx context.Context, topic string) error {
	var ack struct {
		Topic string `json:"topic"`
	}
	return c.request(ctx, "topic:subscribe", map[string]string{"topic": topic}, &ack)
}

// Unsubscribe unsubscribes the socket from topic (topic:unsubscribe) and
// reports whether it was subscribed.
func (c *Conn) Unsubscribe(ctx context.Context, topic string) (removed bool, err error) {
	var ack struct {
		Removed bool `json:"removed"`
	}
	err = c.request(ctx, "topic:unsubscribe", map[string]string{"topic": topic}, &ack)
	return ack.Removed, err
}

// ParseTopicMessage decodes a topic:message event.
func ParseTopicMessage(e Event) (*TopicMessage, error) {
	if e.Name != "topic:message" || len(e.Args) != 1 {
		return nil, fmt.Errorf("client: %s with %d arguments is not a topic message", e.Name, len(e.Args))
	}
	var m TopicMessage
	if err := json.Unmarshal(e.Args[0], &m); err != nil {
		return nil, fmt.Errorf("client: topic message: %w", err)
	}
	return &m, nil
}
