package main

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	socketio "github.com/googollee/go-socket.io"
)

// Socket is this node's record of one Socket.IO connection. The server
// creates it in OnConnect and forgets it in OnDisconnect; handlers get it
// from the server's socket table, never from the library's Context.
//
// Every message to the client goes through the Socket's outbound queue: a
// bounded FIFO drained by at most one goroutine, started when the queue
// becomes non-empty and ending when it is empty. A client that does not read
// fills its queue and is disconnected, so it cannot stall anybody else.
type Socket struct {
	conn     socketio.Conn
	id       string  // engine.io session id, crypto-random
	ip       string  // remote IP of the handshake
	claims   *claims // token claims; nil when auth is off
	limits   *limits // per-socket rate limits
	maxQueue int
	spawn    func(func()) // runs a goroutine owned by the server
	onFull   func(*Socket)

	shutdown atomic.Bool // set when the node closes the socket on shutdown

	mu     sync.Mutex // guards the following fields
	room   string     // presence room; "" when not joined
	userID string
	connID string
	closed bool // OnDisconnect has run

	qmu      sync.Mutex // guards the following fields
	queue    []outMsg
	draining bool
	qclosed  bool
}

// outMsg is one event for the client.
type outMsg struct {
	event string
	data  json.RawMessage
}

// ID returns the socket's session id.
func (s *Socket) ID() string { return s.id }

// Conn returns the underlying go-socket.io connection.
func (s *Socket) Conn() socketio.Conn { return s.conn }

// presence returns the socket's presence connection; room is "" when it has
// not joined.
func (s *Socket) presence() (room, userID, connID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.room, s.userID, s.connID
}

// setPresence records the presence connection. It reports false, recording
// nothing, when the socket has already disconnected.
func (s *Socket) setPresence(room, userID, connID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed && room != "" {
		return false
	}
	s.room, s.userID, s.connID = room, userID, connID
	return true
}

// markClosed records that the socket is gone and returns the presence
// connection it held.
func (s *Socket) markClosed() (room, connID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	room, connID = s.room, s.connID
	s.room, s.userID, s.connID = "", "", ""
	return room, connID
}

// Send queues an event for the client. It never blocks. It reports false
// when the queue is full; the socket is then being disconnected.
func (s *Socket) Send(event string, data json.RawMessage) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.qclosed {
		return true
	}
	if len(s.queue) >= s.maxQueue {
		s.qclosed = true
		s.queue = nil
		s.spawn(func() { s.onFull(s) })
		return false
	}
	s.queue = append(s.queue, outMsg{event: event, data: data})
	if !s.draining {
		s.draining = true
		s.spawn(s.drain)
	}
	return true
}

// drain emits queued messages in order until the queue is empty or closed.
// Emit blocks while the client is slow; it returns once the connection closes.
func (s *Socket) drain() {
	for {
		s.qmu.Lock()
		if s.qclosed || len(s.queue) == 0 {
			s.draining = false
			s.qmu.Unlock()
			return
		}
		m := s.queue[0]
		s.queue[0] = outMsg{}
		s.queue = s.queue[1:]
		s.qmu.Unlock()
		s.conn.Emit(m.event, m.data)
	}
}

// closeQueue drops anything queued and stops the drainer.
func (s *Socket) closeQueue() {
	s.qmu.Lock()
	s.qclosed = true
	s.queue = nil
	s.qmu.Unlock()
}
