package main

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The long-polling transport. It has no goroutine of its own: a GET parks
// its HTTP handler goroutine until frames are queued for the session, the
// session ends, an upgrade begins, or pollWait passes; a POST runs its
// packets' handlers on its own handler goroutine, in order (s.rmu), and
// answers "ok" when they are done, so a client whose events are slow to
// handle is slowed down with them.

// pollWait bounds one long poll. Each protocol's pings answer a poll well
// before it: the server's (v4) or the client's pong (v3).
func (e *Engine) pollWait() time.Duration { return e.opts.pingInterval + e.opts.pingTimeout }

// servePoll answers a GET with everything queued for the session, waiting
// for something if nothing is.
func (e *Engine) servePoll(w http.ResponseWriter, r *http.Request, s *session) {
	s.wmu.Lock()
	if expired(w, s) {
		return
	}
	if s.ws != nil || s.poll != nil {
		overlap := s.ws == nil
		s.wmu.Unlock()
		if overlap { // engine.io closes a session whose client polls twice at once
			s.close("poll overlap")
		}
		engineError(w, http.StatusBadRequest, eioErrBadReq, "Bad request")
		return
	}
	s.lastSeen = time.Now()
	s.greeted = true
	if s.probe != nil && !e.awaitProbeLocked(r, s) {
		s.wmu.Unlock()
		engineError(w, http.StatusBadRequest, eioErrBadReq, "Bad request")
		return
	}
	if len(s.queue) == 0 && !s.gone && !s.upgrading {
		ch := make(chan struct{})
		s.poll = ch
		s.wmu.Unlock()
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Now().Add(e.pollWait() + writeWait))
		t := time.NewTimer(e.pollWait())
		select {
		case <-ch:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
		s.wmu.Lock()
		if s.poll == ch {
			s.poll = nil
		}
		if r.Context().Err() != nil { // the client went away: keep the frames
			s.wmu.Unlock()
			return
		}
	}
	e.respondPollLocked(w, s, nil)
}

// expired reports whether s's client stayed silent past its deadline, the
// session's timer not having run yet (it may run late on a busy node): the
// session ends now and the request is answered as for an unknown session.
// Called with s.wmu held; when it reports true, s.wmu has been released.
func expired(w http.ResponseWriter, s *session) bool {
	if time.Now().Before(s.deadlineLocked()) {
		return false
	}
	reason := s.timeoutReasonLocked()
	s.wmu.Unlock()
	s.close(reason)
	engineError(w, http.StatusBadRequest, eioErrSession, "Session ID unknown")
	return true
}

// probeGrace bounds how long a poll that arrives during an upgrade probe
// waits for the probe's outcome. engine.io answers such a poll on its next
// upgrade check, every 100 ms.
const probeGrace = 100 * time.Millisecond

// awaitProbeLocked holds a poll that arrived while a websocket probes an
// upgrade until the probe ends or probeGrace passes, and reports whether the
// poll may still be answered: false once the session is on the websocket,
// where a poll gets 400 as after any upgrade. A client that probes polls no
// more once it has sent the upgrade packet, so a poll still coming is
// either from before (the grace bounds its wait) or out of turn. s.wmu is
// held on entry and on return.
func (e *Engine) awaitProbeLocked(r *http.Request, s *session) bool {
	deadline := time.Now().Add(probeGrace)
	for s.probe != nil && !s.gone && s.poll == nil && r.Context().Err() == nil {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		ch := make(chan struct{})
		s.poll = ch
		s.wmu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ch: // the probe was answered or ended, or frames were queued
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
		s.wmu.Lock()
		if s.poll == ch {
			s.poll = nil
		}
	}
	return s.ws == nil
}

// respondPoll answers the handshake GET: the open packet, then whatever
// is already queued.
func (e *Engine) respondPoll(w http.ResponseWriter, _ *http.Request, s *session, open []byte) {
	s.wmu.Lock()
	e.respondPollLocked(w, s, open)
}

// closeGrace is how long a polling session outlives its client's close
// packet, for a poll already on its way to be answered.
const closeGrace = 100 * time.Millisecond

// clientClose ends the session at its client's close packet. A polling
// session answers the poll parked at that moment, or one that comes within
// closeGrace, with a noop, as engine.io does, and then closes; without such a
// poll it closes after closeGrace.
func (e *Engine) clientClose(s *session) {
	s.wmu.Lock()
	polling := s.ws == nil && s.probe == nil
	s.wmu.Unlock()
	if !polling || !s.sendLast([]byte{eioNoop}) {
		s.close("client close")
		return
	}
	time.AfterFunc(closeGrace, func() {
		e.spawnFor(s, func() { s.close("client close") })
	})
}

// respondPollLocked writes first (if any) and every queued frame as one
// payload, and unlocks s.wmu. An empty answer is a noop, or a close packet
// when the session has ended.
func (e *Engine) respondPollLocked(w http.ResponseWriter, s *session, first []byte) {
	frames := s.takeLocked()
	s.drainedLocked()
	gone, flushGone := s.gone, s.flushGone
	s.wmu.Unlock()
	b := getBuf()
	n := 0
	add := func(p []byte) {
		writePayload(b, s.proto, p, n == 0)
		n++
	}
	if first != nil {
		add(first)
	}
	for _, f := range frames {
		add(f)
	}
	if n == 0 {
		if gone {
			add([]byte{eioClose})
		} else {
			add([]byte{eioNoop})
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	_, _ = w.Write(b.Bytes())
	putBuf(b)
	s.wmu.Lock()
	s.lastTake = time.Now()
	if s.spare == nil && cap(frames) <= 1024 {
		clear(frames)
		s.spare = frames[:0]
	}
	empty := len(s.queue) == 0
	s.wmu.Unlock()
	if flushGone && empty {
		s.close("closed after its last packet")
	}
}

// errPollTooLarge is a polling packet over the message limit: as over a
// websocket, it ends the session.
var errPollTooLarge = errors.New("polling: message too large")

// servePost handles the packets of a POST body, in order. The body holds at
// most twice the message limit, each packet in it at most the limit.
func (e *Engine) servePost(w http.ResponseWriter, r *http.Request, s *session) {
	s.wmu.Lock()
	if expired(w, s) {
		return
	}
	upgraded := s.ws != nil
	s.lastSeen = time.Now()
	s.greeted = true
	s.wmu.Unlock()
	if upgraded {
		engineError(w, http.StatusBadRequest, eioErrBadReq, "Bad request")
		return
	}
	b := getBuf()
	defer putBuf(b)
	if _, err := b.ReadFrom(io.LimitReader(http.MaxBytesReader(w, r.Body, int64(2*e.opts.maxMessage)), int64(2*e.opts.maxMessage)+1)); err != nil {
		engineError(w, http.StatusRequestEntityTooLarge, eioErrBadReq, "body too large")
		return
	}
	decode := decodePayloadV4
	switch {
	case s.proto == 3 && r.Header.Get("Content-Type") == "application/octet-stream":
		decode = decodePayloadV3Binary
	case s.proto == 3:
		decode = decodePayloadV3
	}
	s.rmu.Lock()
	err := decode(b.Bytes(), func(p []byte) error {
		if len(p) > e.opts.maxMessage { // the websocket's rule: one message, not the body
			return errPollTooLarge
		}
		return e.handlePacket(s, p)
	})
	s.rmu.Unlock()
	if errors.Is(err, errPollTooLarge) || errors.Is(err, errAttachmentLimit) {
		e.log.Debug("closing socket: polling message too large", "conn", s.id)
		s.close("message too large")
		engineError(w, http.StatusRequestEntityTooLarge, eioErrBadReq, "message too large")
		return
	}
	if err != nil {
		e.log.Debug("closing socket: bad polling payload", "conn", s.id, "err", err)
		s.close("parse error")
		engineError(w, http.StatusBadRequest, eioErrBadReq, "Bad request")
		return
	}
	s.awaitDrain()
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write([]byte("ok"))
}
