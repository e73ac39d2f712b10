package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
)

// Emit sends an event without asking for an acknowledgement. Arguments are
// JSON-encoded; a json.RawMessage is sent verbatim. Emit waits for its turn to
// write (at most the time another write may take) and returns ErrClosed once
// the connection has ended.
func (c *Conn) Emit(event string, args ...any) error {
	data, err := encodeEventData(event, args)
	if err != nil {
		return err
	}
	return c.write(context.Background(), eventFrame(-1, data))
}

// Call sends an event with an ack id and waits for the server's
// acknowledgement, returning its first argument as raw JSON (null when it has
// none). It returns ctx.Err() when ctx ends first (a late reply is then
// discarded) and ErrClosed when the connection ends first.
func (c *Conn) Call(ctx context.Context, event string, args ...any) (json.RawMessage, error) {
	data, err := encodeEventData(event, args)
	if err != nil {
		return nil, err
	}
	ch := make(chan json.RawMessage, 1)
	c.mu.Lock()
	if c.ended || c.closing {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	id := c.nextID
	c.nextID++
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.write(ctx, eventFrame(id, data)); err != nil {
		c.forget(id)
		return nil, err
	}
	select {
	case arg, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		return arg, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

// WriteRaw sends frame as one websocket text frame, unchanged: an Engine.IO
// packet such as "42[\"event\"]", or a malformed one for tests.
func (c *Conn) WriteRaw(frame string) error {
	return c.write(context.Background(), []byte(frame))
}

// forget drops the pending call with the given id.
func (c *Conn) forget(id int64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// write sends one text frame, waiting for its turn until ctx is done.
func (c *Conn) write(ctx context.Context, frame []byte) error {
	select {
	case c.wsem <- struct{}{}:
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wsem }()
	c.mu.Lock()
	stop := c.ended || c.closing
	c.mu.Unlock()
	if stop {
		return ErrClosed
	}
	return c.writeLocked(frame)
}

// writeUnlessMuted sends one Engine.IO ping or pong frame unless the
// connection is muted; Mute holds wsem while it sets muted, so no such frame
// follows its return.
func (c *Conn) writeUnlessMuted(frame []byte) error {
	select {
	case c.wsem <- struct{}{}:
	case <-c.done:
		return ErrClosed
	}
	defer func() { <-c.wsem }()
	c.mu.Lock()
	stop := c.ended || c.closing
	c.mu.Unlock()
	if stop || c.muted.Load() {
		return nil
	}
	return c.writeLocked(frame)
}

// writeLocked writes one text frame; c.wsem must be held. A failed write ends
// the connection.
func (c *Conn) writeLocked(frame []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		err = fmt.Errorf("%w: write: %v", ErrClosed, err)
		c.finish(err)
		return err
	}
	return nil
}
