package main

import (
	"net"
	"sync"
	"time"
)

// session is one Engine.IO connection: its transport, outbound queue and
// liveness, under the module-facing Socket (socket.go) that the engine
// creates with it. The engine creates it at the handshake and closes it
// once; the host is told of its Socket between connect and disconnect.
//
// Everything for the client goes through the outbound queue as ready-made
// Engine.IO packets: a websocket writer or the next poll takes everything
// queued at once. A client that lets more than the queue's byte bound pile
// up while taking nothing for slowAfter (or four times the bound in any
// case), or whose websocket does not take a write within writeWait, is
// disconnected, so it cannot stall anybody else; a client that reads is
// not dropped for a burst.
type session struct {
	eng     *Engine
	sock    *Socket // what modules see of it; created with it
	id      string  // Engine.IO session id: crypto-random, a bearer secret
	proto   int     // protocol generation: 3 or 4 (the handshake's EIO)
	ip      string  // remote IP of the handshake
	token   string  // the handshake's token query parameter
	created time.Time
	done    chan struct{} // closed when the session ends

	rmu sync.Mutex     // held while handling the client's packets, in order, and guards:
	bin *pendingBinary // a binary event waiting for its attachments

	wmu       sync.Mutex // guards the following fields
	ws        net.Conn   // the websocket's raw connection, after its handshake
	probe     net.Conn   // a websocket probing an upgrade
	upgrading bool       // the probe was answered; polling pauses
	queue     [][]byte
	spare     [][]byte // the writer's last batch, reused
	queued    int      // bytes in queue
	writing   bool     // a websocket writer is running
	poll      chan struct{}
	lastSeen  time.Time       // last packet or request from the client
	lastTake  time.Time       // last completed write or poll: the client takes what it is sent
	drained   chan struct{}   // closed when the queue is taken; set by awaitDrain
	greeted   bool            // the client came back after its handshake (a poll or post), or opened it on a websocket
	connected bool            // the host was told of the connect of "/"
	rootLeft  bool            // the client left "/" while in other namespaces
	nsps      map[string]bool // namespaces other than "/" the session is in
	bare      time.Time       // since when the session is in no namespace (connect timeout)
	flushGone bool            // close once the queue is flushed
	gone      bool
	timer     *time.Timer
	nextPing  time.Time
}

// isGone reports whether the session has ended (or is ending).
func (s *session) isGone() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.gone
}

// sendFrame queues one Engine.IO packet. frame may be shared with other
// sockets and is never modified.
func (s *session) sendFrame(frame []byte) bool { return s.send(frame, false) }

// sendLast queues frame as the session's last packet: the session closes
// once it is sent (a connect refusal, a disconnect by the server).
func (s *session) sendLast(frame []byte) bool { return s.send(frame, true) }

// sendFrames queues packets that must go together and in order: a binary
// packet and its attachments.
func (s *session) sendFrames(frames [][]byte) bool {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	s.wmu.Lock()
	if !s.admitLocked(n) {
		return false
	}
	for _, f := range frames {
		s.queue = append(s.queue, f)
	}
	s.queued += n
	s.eng.queued.Add(int64(n))
	s.wakeLocked()
	s.wmu.Unlock()
	return true
}

func (s *session) send(frame []byte, last bool) bool {
	s.wmu.Lock()
	if !s.admitLocked(len(frame)) {
		return false
	}
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	s.eng.queued.Add(int64(len(frame)))
	s.flushGone = s.flushGone || last
	s.wakeLocked()
	s.wmu.Unlock()
	return true
}

// admitLocked reports whether n more bytes may be queued. When not, the
// session is gone or is being dropped for not reading, and s.wmu has been
// released; s.wmu must be held.
func (s *session) admitLocked(n int) bool {
	if s.gone {
		s.wmu.Unlock()
		return false
	}
	if len(s.queue) == 0 && !s.writing { // the client was up to date until now
		s.lastTake = time.Now()
	}
	// Checked after the refresh above: a client that took everything it was
	// sent is reading, however large the frame that comes now (a big
	// snapshot) and however long it was idle.
	if s.queued+n > s.eng.opts.maxQueueBytes && s.notReadingLocked() {
		// Closed on a goroutine of its own: the caller may hold locks
		// (the hub's) that the disconnect hooks take.
		s.gone = true
		s.eng.spawn(func() { s.finish("slow client: outbound queue full") }) // under wmu: see Engine.spawnFor
		s.wmu.Unlock()
		s.eng.host.slow(s.sock)
		return false
	}
	return true
}

// readPauseBytes is how much may be queued for a client before its reader
// stops reading its next packet: a node that cannot deliver as fast as its
// clients send (a busy room fans every patch out to every member) slows
// them down instead of queueing without bound.
const readPauseBytes = 256 << 10

// awaitDrain waits, before the session's next packet is read, until its
// queue is under readPauseBytes (its writer or the next poll takes it
// whole), or the session ends.
func (s *session) awaitDrain() {
	for {
		s.wmu.Lock()
		if s.gone || s.queued < readPauseBytes {
			s.wmu.Unlock()
			return
		}
		if s.drained == nil {
			s.drained = make(chan struct{})
		}
		ch := s.drained
		s.wmu.Unlock()
		select {
		case <-ch:
		case <-s.done:
			return
		}
	}
}

// drainedLocked wakes a reader waiting in awaitDrain; the queue was just
// taken. s.wmu must be held.
func (s *session) drainedLocked() {
	if s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// slowAfter is how long a client may go without taking anything (a
// completed websocket write or poll) while its queue is over the bound
// before it counts as not reading. A client that keeps taking is allowed
// bursts of up to four times the bound.
const slowAfter = 2 * time.Second

// notReadingLocked reports whether the client does not take what it is
// sent: nothing taken for slowAfter, or a queue four times the bound.
// s.wmu must be held.
func (s *session) notReadingLocked() bool {
	return time.Since(s.lastTake) > s.eng.opts.slowAfterOr() || s.queued > 4*s.eng.opts.maxQueueBytes
}

// wakeLocked starts the websocket writer or releases a parked poll. s.wmu
// must be held.
func (s *session) wakeLocked() {
	if s.ws != nil {
		if !s.writing && len(s.queue) > 0 {
			s.writing = true
			s.eng.spawn(s.writeLoop)
		}
		return
	}
	if s.poll != nil {
		close(s.poll)
		s.poll = nil
	}
}

// takeLocked returns everything queued and empties the queue. s.wmu must be
// held.
func (s *session) takeLocked() [][]byte {
	q := s.queue
	s.queue, s.spare = s.spare[:0], nil
	s.eng.queued.Add(-int64(s.queued))
	s.queued = 0
	return q
}

// seen records activity from the client.
func (s *session) seen() {
	s.wmu.Lock()
	s.lastSeen = time.Now()
	s.wmu.Unlock()
}

// markConnected records that the host knows of the socket.
func (s *session) markConnected() {
	s.wmu.Lock()
	s.connected, s.greeted = true, true
	s.wmu.Unlock()
}

func (s *session) isConnected() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.connected
}

// startTimer arms the session's timer: it sends v4 pings every
// pingInterval and closes the session when the client has been silent for
// pingInterval + pingTimeout, or when it has not come back within
// pingTimeout of its handshake (an abandoned handshake).
func (s *session) startTimer() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.gone || s.timer != nil {
		return
	}
	s.nextPing = time.Now().Add(s.eng.opts.pingInterval)
	s.timer = time.AfterFunc(s.nextWakeLocked(time.Now()), s.tick)
}

// nextWakeLocked returns how long until the timer must run again.
func (s *session) nextWakeLocked(now time.Time) time.Duration {
	next := s.deadlineLocked()
	if s.proto == 4 && s.nextPing.Before(next) {
		next = s.nextPing
	}
	return max(next.Sub(now), time.Millisecond)
}

// deadlineLocked returns when the session ends if the client stays silent,
// or, while it is in no namespace, when its connect timeout ends it.
func (s *session) deadlineLocked() time.Time {
	if !s.greeted {
		return s.created.Add(s.eng.opts.pingTimeout)
	}
	d := s.lastSeen.Add(s.eng.opts.pingInterval + s.eng.opts.pingTimeout)
	if c, ok := s.connectDeadlineLocked(); ok && c.Before(d) {
		d = c
	}
	return d
}

// connectDeadlineLocked returns when the connect timeout ends a session in
// no namespace ("/" included); false while it is in one.
func (s *session) connectDeadlineLocked() (time.Time, bool) {
	if s.connected || len(s.nsps) > 0 || s.eng.opts.echo {
		return time.Time{}, false
	}
	return s.bare.Add(s.eng.opts.connectTimeoutOr()), true
}

// timeoutReasonLocked says why a session past its deadline ends.
func (s *session) timeoutReasonLocked() string {
	if !s.greeted {
		return "handshake abandoned"
	}
	if c, ok := s.connectDeadlineLocked(); ok && !time.Now().Before(c) {
		return "connect timeout"
	}
	return "ping timeout"
}

// tick is the session timer's function.
func (s *session) tick() {
	now := time.Now()
	s.wmu.Lock()
	if s.gone {
		s.wmu.Unlock()
		return
	}
	if !now.Before(s.deadlineLocked()) {
		reason := s.timeoutReasonLocked()
		s.wmu.Unlock()
		s.close(reason)
		return
	}
	if s.proto == 4 && !now.Before(s.nextPing) {
		s.nextPing = now.Add(s.eng.opts.pingInterval)
		s.queue = append(s.queue, []byte{eioPing})
		s.queued++
		s.eng.queued.Add(1)
		s.wakeLocked()
	}
	s.timer.Reset(s.nextWakeLocked(now))
	s.wmu.Unlock()
}

// close ends the session once: its transport is closed, a parked poll
// answered, the engine forgets it and the host is told.
func (s *session) close(reason string) {
	s.wmu.Lock()
	if s.gone {
		s.wmu.Unlock()
		return
	}
	s.gone = true
	s.wmu.Unlock()
	s.finish(reason)
}

// finish does the work of close for a session just marked gone.
func (s *session) finish(reason string) {
	s.wmu.Lock()
	ws, probe, connected := s.ws, s.probe, s.connected
	nsps := s.namespacesLocked()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.eng.queued.Add(-int64(s.queued))
	s.queue, s.spare, s.queued = nil, nil, 0
	if s.poll != nil {
		close(s.poll)
		s.poll = nil
	}
	close(s.done)
	s.wmu.Unlock()
	if ws != nil {
		_ = ws.Close()
	}
	if probe != nil {
		_ = probe.Close()
	}
	s.eng.forget(s)
	for _, nsp := range nsps {
		s.eng.host.nspDisconnect(s.sock, nsp, reason)
	}
	if connected {
		s.eng.host.disconnect(s.sock, reason)
	}
	s.eng.host.gone(s.sock)
}
