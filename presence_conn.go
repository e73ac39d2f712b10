package main

import "sync"

// presenceKey is the Socket.Value key of a socket's presenceConn.
type presenceKey struct{}

// presenceConn is a socket's presence connection, kept on the socket with
// Socket.Set from OnConnect on: the room it is joined to ("" when none), its
// user and its connId.
type presenceConn struct {
	mu     sync.Mutex // guards the following fields
	room   string
	userID string
	connID string
	closed bool // the socket has disconnected
}

// conn returns s's presence connection. A socket presence was not told of
// (it is gone already) gets a closed one, which joins nothing.
func (p *Presence) conn(s *Socket) *presenceConn {
	if c, ok := s.Value(presenceKey{}).(*presenceConn); ok {
		return c
	}
	return &presenceConn{closed: true}
}

// get returns the connection; room is "" when the socket has not joined.
func (c *presenceConn) get() (room, userID, connID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.room, c.userID, c.connID
}

// set records the connection. It reports false, recording nothing, when
// the socket has already disconnected.
func (c *presenceConn) set(room, userID, connID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed && room != "" {
		return false
	}
	c.room, c.userID, c.connID = room, userID, connID
	return true
}

// clearIf forgets the connection if it is still connID in room.
func (c *presenceConn) clearIf(room, connID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.room == room && c.connID == connID {
		c.room, c.userID, c.connID = "", "", ""
	}
}

// markClosed records that the socket is gone and returns the connection it
// held.
func (c *presenceConn) markClosed() (room, connID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	room, connID = c.room, c.connID
	c.room, c.userID, c.connID = "", "", ""
	return room, connID
}

// joinedCount counts the sockets holding a presence connection.
func (p *Presence) joinedCount(socks []*Socket) int {
	n := 0
	for _, s := range socks {
		if room, _, _ := p.conn(s).get(); room != "" {
			n++
		}
	}
	return n
}
