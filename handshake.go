package main

import (
	"context"
	"time"
)

// Handshake bookkeeping: go-socket.io creates a session on a goroutine of its
// own after answering the handshake, so for a short while a session exists
// for the client but not yet for the library. The server keeps track of
// those moments here.

// sessionIDs is the server seen as go-socket.io's session id generator.
type sessionIDs Server

// NewID returns a random session id and records it as pending until the
// library has finished connecting its session (onConnect). go-socket.io
// registers a new session on a goroutine of its own after answering the
// handshake, so a client's next request can arrive before the session
// exists ("invalid sid"), and closing the library while that goroutine runs
// panics the process. awaitSession and shutdown use the pending set to wait
// those windows out.
func (g *sessionIDs) NewID() string {
	s := (*Server)(g)
	id := newID()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for sid, p := range s.pending { // entries of handshakes that failed
		if now.Sub(p.since) > pendingMaxAge {
			delete(s.pending, sid)
		}
	}
	s.pending[id] = pendingSession{since: now, ready: make(chan struct{})}
	return id
}

// pendingMaxAge bounds how long a handshake may take to connect its session.
const pendingMaxAge = 2 * time.Second

// pendingSession is a handshake whose session is not connected yet.
type pendingSession struct {
	since time.Time
	ready chan struct{} // closed by onConnect
}

// young reports whether sid was issued by NewID less than pendingMaxAge
// ago and has not connected yet.
func (s *Server) young(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[sid]
	return ok && time.Since(p.since) < pendingMaxAge
}

// awaitConnect waits, at most until pendingMaxAge after its handshake, for
// session sid to connect, and returns its socket (nil if it did not).
func (s *Server) awaitConnect(sid string) *Socket {
	s.mu.Lock()
	p, pending := s.pending[sid]
	sock := s.sockets[sid]
	s.mu.Unlock()
	if sock != nil || !pending {
		return sock
	}
	t := time.NewTimer(time.Until(p.since.Add(pendingMaxAge)))
	defer t.Stop()
	select {
	case <-p.ready:
	case <-t.C:
	}
	return s.socket(sid)
}

// settleHandshakes waits until no handshake younger than pendingMaxAge is
// pending, or ctx ends.
func (s *Server) settleHandshakes(ctx context.Context) {
	for {
		s.mu.Lock()
		var wait chan struct{}
		var since time.Time
		for _, p := range s.pending {
			if time.Since(p.since) < pendingMaxAge {
				wait, since = p.ready, p.since
				break
			}
		}
		s.mu.Unlock()
		if wait == nil {
			return
		}
		t := time.NewTimer(time.Until(since.Add(pendingMaxAge)))
		select {
		case <-wait:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// reserveIPSlot admits a handshake from ip if the sockets per IP cap allows
// it, counting both connected sockets and admitted handshakes that have not
// connected yet (the client sees its connect packet before onConnect runs,
// so counting sockets alone would let a burst through). Reservations of
// handshakes that never connect lapse after pendingMaxAge.
func (s *Server) reserveIPSlot(ip string) bool {
	if s.opts.MaxSocketsPerIP <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reserved[ip]
	for len(r) > 0 && time.Since(r[0]) > pendingMaxAge {
		r = r[1:]
	}
	if s.perIP[ip]+len(r) >= s.opts.MaxSocketsPerIP {
		if len(r) == 0 {
			delete(s.reserved, ip)
		} else {
			s.reserved[ip] = r
		}
		return false
	}
	s.reserved[ip] = append(r, time.Now())
	return true
}
