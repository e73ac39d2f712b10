package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// readLoop reads frames until the connection ends. It is the only reader of
// ws. Unless the connection is muted, a connection on which nothing arrives
// for pingInterval+pingTimeout ends: in protocol 3 the server answers every
// ping, in protocol 4 it pings every pingInterval.
func (c *Conn) readLoop() {
	defer close(c.readDone)
	dead := c.pingInterval + c.pingTimeout
	var buf bytes.Buffer // reused for every frame with OnRawEvent
	for {
		c.deadlineMu.Lock()
		if !c.muted.Load() {
			_ = c.ws.SetReadDeadline(time.Now().Add(dead))
		}
		c.deadlineMu.Unlock()
		typ, msg, err := c.readFrame(&buf)
		if err != nil {
			c.finish(readError(err, dead))
			return
		}
		if typ == websocket.BinaryMessage {
			err = c.handleBinary(msg)
		} else if len(msg) > 0 {
			err = c.handleFrame(msg)
		}
		if err != nil {
			c.finish(err)
			return
		}
	}
}

// readFrame reads one frame: a fresh slice, or with OnRawEvent one that
// buf holds until the next call.
func (c *Conn) readFrame(buf *bytes.Buffer) (int, []byte, error) {
	if c.onRaw == nil {
		return c.ws.ReadMessage()
	}
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return typ, nil, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(r)
	return typ, buf.Bytes(), err
}

// readError explains why the read loop stopped.
func readError(err error, dead time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: ping timeout: nothing received for %v", ErrClosed, dead)
	}
	return fmt.Errorf("%w: read: %v", ErrClosed, err)
}

// handleFrame handles one Engine.IO text frame; an error ends the connection.
func (c *Conn) handleFrame(msg []byte) error {
	switch msg[0] {
	case eioMessage:
		return c.handlePacket(msg[1:])
	case eioPing: // Engine.IO 4 servers ping; answer at once, in kind.
		pong := append([]byte{eioPong}, msg[1:]...)
		_ = c.writeUnlessMuted(pong)
	case eioClose:
		return fmt.Errorf("%w: server closed the engine.io session", ErrClosed)
	}
	return nil // open, pong, upgrade, noop and unknown types
}

// handlePacket handles one Socket.IO packet. Malformed packets are ignored,
// as socket.io-client does; packets of other namespaces and binary ones go
// to namespace.go.
func (c *Conn) handlePacket(b []byte) error {
	p, err := parseSIO(b)
	switch {
	case err != nil:
		return nil
	case p.typ == sioBinaryEvent || p.typ == sioBinaryAck:
		return c.startBinary(b, p)
	case !p.isRoot():
		return c.handleNamespacePacket(p, nil)
	}
	switch p.typ {
	case sioEvent:
		if c.onRaw != nil {
			c.onRaw(p.data, time.Now())
			return nil
		}
		name, args, err := parseEvent(p.data)
		if err == nil {
			c.dispatch(Event{Name: name, Args: args, Received: time.Now()})
		}
	case sioAck:
		if arg, err := parseAckArg(p.data); err == nil && p.id >= 0 {
			c.resolve(p.id, bytes.Clone(arg)) // the frame's buffer may be reused
		}
	case sioError:
		// Like socket.io-client, surface it as the reserved "error" event.
		c.dispatch(Event{Name: "error", Args: []json.RawMessage{bytes.Clone(p.data)}, Received: time.Now()})
	case sioDisconnect:
		return fmt.Errorf("%w: server disconnected the socket", ErrClosed)
	}
	return nil
}

// dispatch hands an event to OnEvent or to the Events queue.
func (c *Conn) dispatch(e Event) {
	if c.onEvent != nil {
		c.inCallback.Store(true)
		defer c.inCallback.Store(false)
		c.onEvent(e)
		return
	}
	c.mu.Lock()
	c.queue = append(c.queue, e)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// resolve delivers an acknowledgement to the Call waiting for it, if any.
func (c *Conn) resolve(id int64, arg json.RawMessage) {
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- arg // buffered, never blocks
	}
}

// run sends a ping every pingInterval (protocol 3 only) and feeds the Events
// channel from the queue. Once the connection has ended it delivers what
// remains queued and closes the Events channel.
func (c *Conn) run() {
	t := time.NewTicker(c.pingInterval)
	defer t.Stop()
	var ping <-chan time.Time // nil in protocol 4: the server pings
	if c.protocol == 3 {
		ping = t.C
	}
	var queue []Event
	for {
		var out chan<- Event
		var next Event
		if len(queue) > 0 {
			out, next = c.events, queue[0]
		}
		select {
		case <-ping:
			_ = c.writeUnlessMuted(framePing)
		case <-c.notify:
			queue = c.takeQueue(queue)
		case out <- next:
			queue[0] = Event{}
			if queue = queue[1:]; len(queue) == 0 {
				queue = nil
			}
		case <-c.done:
			if c.events != nil {
				t.Stop()
				<-c.readDone
				for _, e := range c.takeQueue(queue) {
					c.events <- e
				}
				close(c.events)
			}
			return
		}
	}
}

// takeQueue appends the events queued by the read loop to queue.
func (c *Conn) takeQueue(queue []Event) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if queue == nil {
		queue, c.queue = c.queue, nil
		return queue
	}
	queue = append(queue, c.queue...)
	c.queue = nil
	return queue
}
