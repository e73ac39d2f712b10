package main

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The websocket transport. Per session: one reader goroutine, started here
// by the upgrade request (which then returns, releasing everything net/http
// held for it) and ended by a read error or by Socket.close closing the
// connection; and a writer goroutine (writeLoop) that exists only while
// frames are queued. gorilla/websocket reads frames (with the message size
// limit checked from each frame header, before its payload is read) and
// writes control frames; data frames are written by writeLoop straight to
// the connection, everything queued in one write. The kernel serialises
// whole writes on one connection, so control and data frames never
// interleave.

// bufPool holds the buffers that reads and writes borrow; none is held
// while a connection is idle.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf is the largest buffer put back into bufPool.
const maxPooledBuf = 64 << 10

func getBuf() *bytes.Buffer { b := bufPool.Get().(*bytes.Buffer); b.Reset(); return b }

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		bufPool.Put(b)
	}
}

// openWebsocket opens session s directly on a websocket: the open packet
// (and for v3 the namespace connect) is its first frame.
func (e *Engine) openWebsocket(w http.ResponseWriter, r *http.Request, s *Socket, open []byte) {
	conn, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil { // Upgrade has answered the request
		s.close("websocket upgrade failed")
		return
	}
	conn.SetReadLimit(int64(e.opts.maxMessage))
	s.wmu.Lock()
	s.ws = conn
	s.greeted = s.proto == 3
	s.wmu.Unlock()
	s.sendFrame(open)
	if s.proto == 3 && !e.connectV3(s) {
		return
	}
	s.startTimer()
	e.spawn(func() { e.readLoop(s, conn) })
}

// serveUpgrade takes a polling session's websocket upgrade request: the
// probe runs on its own goroutine, and on success that goroutine becomes the
// session's reader.
func (e *Engine) serveUpgrade(w http.ResponseWriter, r *http.Request, s *Socket) {
	s.wmu.Lock()
	busy := s.ws != nil || s.probe != nil || s.gone
	s.wmu.Unlock()
	if busy {
		engineError(w, http.StatusBadRequest, eioErrBadReq, "Bad request")
		return
	}
	conn, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn.SetReadLimit(int64(e.opts.maxMessage))
	s.wmu.Lock()
	if s.gone || s.probe != nil {
		s.wmu.Unlock()
		_ = conn.Close()
		return
	}
	s.probe = conn // closed by Socket.close if the session ends first
	s.wmu.Unlock()
	e.spawn(func() { e.probe(s, conn) })
}

// probe runs the upgrade handshake: the client sends "2probe", the server
// answers "3probe" and releases the parked poll with a noop so that the
// client can pause polling, then the client sends "5" and the websocket
// becomes the session's transport, queued frames and all.
func (e *Engine) probe(s *Socket, conn *websocket.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(upgradeWait))
	if !readText(conn, "2probe") || conn.WriteMessage(websocket.TextMessage, []byte("3probe")) != nil {
		s.wmu.Lock()
		s.probe = nil
		s.wmu.Unlock()
		_ = conn.Close()
		return
	}
	s.wmu.Lock()
	s.upgrading = true
	if s.poll != nil && len(s.queue) == 0 {
		s.queue = append(s.queue, []byte{eioNoop})
		s.queued++
	}
	s.wakeLocked()
	s.wmu.Unlock()
	if !readText(conn, "5") {
		s.wmu.Lock()
		s.upgrading, s.probe = false, nil
		s.wmu.Unlock()
		_ = conn.Close()
		return
	}
	s.wmu.Lock()
	if s.gone {
		s.wmu.Unlock()
		_ = conn.Close()
		return
	}
	if s.poll != nil { // a poll that raced the upgrade: it answers a noop
		close(s.poll)
		s.poll = nil
	}
	s.ws, s.probe, s.upgrading = conn, nil, false
	s.wakeLocked()
	s.wmu.Unlock()
	s.seen()
	e.readLoop(s, conn)
}

// readText reads one message and reports whether it is the text want.
func readText(conn *websocket.Conn, want string) bool {
	typ, msg, err := conn.ReadMessage()
	return err == nil && typ == websocket.TextMessage && string(msg) == want
}

// readLoop is the session's websocket reader: it handles each packet in
// turn and ends the session when the connection fails or a packet is bad.
// Each read must come within pingInterval + pingTimeout of the previous
// one (v3 clients ping, v4 clients answer the server's pings).
func (e *Engine) readLoop(s *Socket, conn *websocket.Conn) {
	reason := "transport close"
	defer func() { s.close(reason) }()
	idle := e.opts.pingInterval + e.opts.pingTimeout
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		typ, r, err := conn.NextReader()
		if err != nil {
			if e, ok := err.(*websocket.CloseError); ok && e.Code == websocket.CloseMessageTooBig {
				reason = "message too large"
			} else if err == websocket.ErrReadLimit {
				reason = "message too large"
			}
			return
		}
		if typ != websocket.TextMessage {
			reason = "binary frame"
			return
		}
		b := getBuf()
		if _, err := b.ReadFrom(r); err != nil {
			putBuf(b)
			if err == websocket.ErrReadLimit {
				reason = "message too large"
			}
			return
		}
		s.rmu.Lock()
		err = e.handlePacket(s, b.Bytes())
		s.rmu.Unlock()
		putBuf(b)
		if err != nil {
			reason = "parse error"
			e.log.Debug("closing socket: bad packet", "conn", s.id, "err", err)
			return
		}
	}
}

// writeLoop writes everything queued to the websocket, in as few writes as
// the queue allows, until the queue is empty. It runs only while frames are
// queued (wakeLocked starts it).
func (s *Socket) writeLoop() {
	for {
		s.wmu.Lock()
		if s.gone || len(s.queue) == 0 {
			s.writing = false
			done := s.flushGone && !s.gone
			s.wmu.Unlock()
			if done {
				s.close("connect refused")
			}
			return
		}
		frames := s.takeLocked()
		nc := s.ws.UnderlyingConn()
		s.wmu.Unlock()

		b := getBuf()
		for _, f := range frames {
			appendWSFrame(b, f)
		}
		_ = nc.SetWriteDeadline(time.Now().Add(writeWait))
		_, err := nc.Write(b.Bytes())
		putBuf(b)
		clear(frames)
		s.wmu.Lock()
		if s.spare == nil && cap(frames) <= 1024 {
			s.spare = frames[:0]
		}
		s.wmu.Unlock()
		if err != nil {
			s.close("write error")
			return
		}
	}
}

// appendWSFrame appends payload as one unmasked, final text frame (RFC 6455
// section 5.2: a server's frames are not masked).
func appendWSFrame(b *bytes.Buffer, payload []byte) {
	var hdr [10]byte
	hdr[0] = 0x81 // FIN, text
	n := len(payload)
	switch {
	case n < 126:
		hdr[1] = byte(n)
		b.Write(hdr[:2])
	case n <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		b.Write(hdr[:4])
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		b.Write(hdr[:10])
	}
	b.Write(payload)
}
