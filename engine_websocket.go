package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// The websocket transport. Per session: one reader goroutine, started here
// by the upgrade request (which then returns, releasing everything net/http
// held for it) and ended by a read error or by Socket.close closing the
// connection; and a writer goroutine (writeLoop) that exists only while
// frames are queued. gorilla/websocket does the opening handshake only; the
// engine then works on the raw connection. The reader (wsReader) parses the
// client's frames itself and holds no buffer while the connection is idle;
// it writes the control frames it owes (pong, close). Data frames are
// written by writeLoop, everything queued in one write. Every write goes
// through the session's wsConn, one whole write at a time, so control and
// data frames never interleave, and once a close frame is written no data
// frame follows it (RFC 6455 section 5.5.1).

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
func (e *Engine) openWebsocket(w http.ResponseWriter, r *http.Request, s *session, open []byte) {
	conn, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil { // Upgrade has answered the request
		s.close("websocket upgrade failed")
		return
	}
	// gorilla's Conn (and its read buffer) is dropped here: nothing was
	// read through it, so every byte from the client is still in the kernel.
	nc := newWSConn(conn.UnderlyingConn())
	s.wmu.Lock()
	if s.gone { // closed meanwhile: the node is shutting down
		s.wmu.Unlock()
		_ = nc.Close()
		return
	}
	s.ws = nc        // closed by Socket.close from now on
	s.greeted = true // the client is there; the connect timeout bounds a v4 one that never connects
	s.wmu.Unlock()
	s.sendFrame(open)
	if s.proto == 3 && !e.connectV3(s) {
		return
	}
	s.startTimer()
	e.spawnFor(s, func() { e.readLoop(s, e.newReader(nc, s.proto)) })
}

// spawnFor runs f on a goroutine of the host's for session s, unless s is
// gone. It decides under s's lock: a shutdown closes every session before it
// waits for the host's goroutines, so none starts after that wait began.
func (e *Engine) spawnFor(s *session, f func()) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.gone {
		e.spawn(f)
	}
}

// serveUpgrade takes a polling session's websocket upgrade request: the
// probe runs on its own goroutine, and on success that goroutine becomes the
// session's reader. The session counts as probing from before the handshake
// is answered, so a poll the client sends after it waits for the probe's
// outcome (awaitProbeLocked). A second websocket for a session that has one
// (or is probing one) is opened and closed at once (close 1008), as
// engine.io closes it.
func (e *Engine) serveUpgrade(w http.ResponseWriter, r *http.Request, s *session) {
	pending := &pendingConn{}
	s.wmu.Lock()
	gone, busy := s.gone, s.ws != nil || s.probe != nil
	if !gone && !busy {
		s.probe = pending
	}
	s.wmu.Unlock()
	if gone {
		engineError(w, http.StatusBadRequest, eioErrSession, "Session ID unknown")
		return
	}
	conn, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.wmu.Lock()
		if s.probe == net.Conn(pending) {
			s.probe = nil
		}
		s.wmu.Unlock()
		return
	}
	nc := newWSConn(conn.UnderlyingConn())
	if busy {
		_ = nc.writeControl(wsClose, binary.BigEndian.AppendUint16(nil, wsClosePolicy))
		_ = nc.Close()
		return
	}
	s.wmu.Lock()
	if s.gone || s.probe != net.Conn(pending) {
		s.wmu.Unlock()
		_ = nc.Close()
		return
	}
	s.probe = nc // closed by Socket.close if the session ends first
	s.wmu.Unlock()
	e.spawnFor(s, func() { e.probe(s, e.newReader(nc, s.proto)) })
}

// pendingConn stands for a probe's connection while its handshake is
// being answered; closing it does nothing.
type pendingConn struct{ net.Conn }

func (*pendingConn) Close() error { return nil }

// probe runs the upgrade handshake: the client sends "2probe", the server
// answers "3probe" and releases the parked poll with a noop so that the
// client can pause polling, then the client sends "5" and the websocket
// becomes the session's transport, queued frames and all. Bytes the client
// sent after the "5" stay in r for the reader.
func (e *Engine) probe(s *session, r *wsReader) {
	nc := r.nc
	_ = nc.SetReadDeadline(time.Now().Add(upgradeWait))
	if !r.readText("2probe") || nc.writeText([]byte("3probe")) != nil {
		r.release()
		s.wmu.Lock()
		s.probe = nil
		s.wmu.Unlock()
		_ = nc.Close()
		return
	}
	s.wmu.Lock()
	s.upgrading = true
	s.wakeLocked() // a parked poll answers with what is queued, or a noop
	s.wmu.Unlock()
	if !r.readText("5") {
		r.release()
		s.wmu.Lock()
		s.upgrading, s.probe = false, nil
		s.wmu.Unlock()
		_ = nc.Close()
		return
	}
	s.wmu.Lock()
	if s.gone {
		s.wmu.Unlock()
		r.release()
		_ = nc.Close()
		return
	}
	if s.poll != nil { // a poll that raced the upgrade: it answers a noop
		close(s.poll)
		s.poll = nil
	}
	s.ws, s.probe, s.upgrading = nc, nil, false
	s.wakeLocked()
	s.wmu.Unlock()
	s.seen()
	e.readLoop(s, r)
}

// readLoop is the session's websocket reader: it handles each packet in
// turn and ends the session when the connection fails or a packet is bad.
// Each read must come within pingInterval + pingTimeout of the previous
// one (v3 clients ping, v4 clients answer the server's pings).
func (e *Engine) readLoop(s *session, r *wsReader) {
	reason := "transport close"
	defer func() { r.release(); s.close(reason) }()
	idle := e.opts.pingInterval + e.opts.pingTimeout
	for {
		_ = r.nc.SetReadDeadline(time.Now().Add(idle))
		msg, err := r.next()
		if err != nil {
			reason = r.refuse(err)
			return
		}
		s.rmu.Lock()
		err = e.handlePacket(s, msg)
		s.rmu.Unlock()
		if errors.Is(err, errAttachmentLimit) { // refused as an oversized message is
			reason = r.refuse(errWSTooLarge)
			e.log.Debug("closing socket: binary attachments over the limit", "conn", s.id)
			return
		}
		if err != nil {
			reason = "parse error"
			e.log.Debug("closing socket: bad packet", "conn", s.id, "err", err)
			return
		}
		s.awaitDrain()
	}
}

// writeLoop writes everything queued to the websocket, in as few writes as
// the queue allows, until the queue is empty. It runs only while frames are
// queued (wakeLocked starts it).
func (s *session) writeLoop() {
	for {
		s.wmu.Lock()
		if s.gone || len(s.queue) == 0 {
			s.writing = false
			done := s.flushGone && !s.gone
			s.wmu.Unlock()
			if done {
				s.close("closed after its last packet")
			}
			return
		}
		frames := s.takeLocked()
		nc := s.ws.(*wsConn)
		s.drainedLocked()
		s.wmu.Unlock()

		b := getBuf()
		for _, f := range frames {
			appendWSFrame(b, f, s.proto)
		}
		err := nc.writeData(b.Bytes())
		putBuf(b)
		clear(frames)
		s.wmu.Lock()
		if s.spare == nil && cap(frames) <= 1024 {
			s.spare = frames[:0]
		}
		if err == nil {
			s.lastTake = time.Now()
		}
		s.wmu.Unlock()
		if errors.Is(err, errWSCloseSent) { // the reader is ending the session
			return
		}
		if err != nil {
			s.close("write error")
			return
		}
	}
}

// appendWSFrame appends payload as one unmasked, final text frame (RFC 6455
// section 5.2: a server's frames are not masked). An Engine.IO binary
// message in the engine's text form (engine_binary.go: "b" and base64, v3
// "b4" and base64) goes as a binary frame of its data, which for v3 starts
// with the message type byte 4.
func appendWSFrame(b *bytes.Buffer, payload []byte, proto int) {
	var hdr [10]byte
	hdr[0] = 0x81 // FIN, text
	if len(payload) > 0 && payload[0] == eioBinary {
		var data []byte
		var err error
		if proto == 3 && len(payload) > 1 && payload[1] == eioMessage {
			data, err = base64.StdEncoding.AppendDecode([]byte{4}, payload[2:])
		} else {
			data, err = base64.StdEncoding.AppendDecode(nil, payload[1:])
		}
		if err == nil {
			hdr[0], payload = 0x82, data // FIN, binary
		}
	}
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

// wsConn is a websocket's raw connection as the engine writes to it: each
// frame or batch of frames is one whole write under mu, and once a close
// frame has been written, data frames are refused (RFC 6455 section 5.5.1:
// no data frame after a close frame). The session's writer writes data
// frames; its reader writes the control frames it owes (pong, close).
type wsConn struct {
	net.Conn

	mu        sync.Mutex // guards the following field, and is held during each write
	closeSent bool       // a close frame was written
}

func newWSConn(nc net.Conn) *wsConn { return &wsConn{Conn: nc} }

// errWSCloseSent refuses a data write after the close frame.
var errWSCloseSent = errors.New("websocket: close frame already sent")

// writeData writes b, one or more whole data frames, in one write, unless
// the close frame has been sent.
func (c *wsConn) writeData(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return errWSCloseSent
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeWait))
	_, err := c.Write(b)
	return err
}

// writeText writes payload as one text frame.
func (c *wsConn) writeText(payload []byte) error {
	b := getBuf()
	defer putBuf(b)
	appendWSFrame(b, payload, 4)
	return c.writeData(b.Bytes())
}

// writeControl writes one control frame (payload at most 125 bytes) in one
// write. Only the first close frame is written.
func (c *wsConn) writeControl(op byte, payload []byte) error {
	b := make([]byte, 0, 2+len(payload))
	b = append(b, 0x80|op, byte(len(payload)))
	b = append(b, payload...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return errWSCloseSent
	}
	c.closeSent = op == wsClose
	_ = c.SetWriteDeadline(time.Now().Add(writeWait))
	_, err := c.Write(b)
	return err
}

// Websocket opcodes and close codes (RFC 6455 sections 5.2 and 7.4.1).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xa

	wsCloseProtocol    = 1002
	wsCloseUnsupported = 1003
	wsClosePolicy      = 1008 // a second websocket for a session
	wsCloseBadData     = 1007 // a text message that is not UTF-8
	wsCloseTooBig      = 1009
)

// Why a websocket reader stopped. Each but errWSClosed is the client's
// fault, and the reader answers it with a close frame (refuse).
var (
	errWSClosed   = errors.New("websocket: closed by the client")
	errWSTooLarge = errors.New("websocket: message too large")
	errWSBinary   = errors.New("websocket: binary frame")
	errWSProtocol = errors.New("websocket: protocol error")
	errWSBadUTF8  = errors.New("websocket: text message is not UTF-8")
)

// wsReadChunk is the least free space a read offers the kernel.
const wsReadChunk = 4 << 10

// wsReader reads a client's websocket frames (RFC 6455 section 5) from the
// raw connection and returns its text messages one by one, answering ping
// and close frames itself. It holds no buffer while the connection is idle:
// it waits for readability through the connection's syscall.RawConn, and
// only bytes that have arrived (an incomplete frame, a message being
// assembled from fragments) keep a pooled buffer borrowed. Each frame's
// length is checked from its header against the message limit before its
// payload is read. One goroutine at a time uses a wsReader (the upgrade
// probe, then the session's reader); the connection's read deadline bounds
// each wait.
type wsReader struct {
	nc  *wsConn
	raw syscall.RawConn // nil when nc has no descriptor (TLS): plain reads, which hold a buffer while they wait
	max int             // bytes of one message

	in         *bytes.Buffer // bytes read and not yet parsed; nil while none
	msg        *bytes.Buffer // the fragmented message so far; nil when none
	fragmented bool          // a message is being assembled in msg
	handedOut  bool          // msg was returned by next and is done
	binary     bool          // binary messages are taken (a session's reader; not a bare one)
	v3         bool          // binary messages are Engine.IO v3's: a type byte, then data
	msgBinary  bool          // the current message is binary

	short   bool                  // the frame at the front of in is not all there
	readFD  func(fd uintptr) bool // r.tryRead, bound once
	readErr error                 // what the last tryRead met
}

// wsSendBuffer is the kernel send buffer of a websocket connection
// (SO_SNDBUF; Linux doubles it). Left to autotuning it grows to megabytes,
// where a client that reads slowly would hold seconds of events out of the
// node's sight; bounded, what the client does not take waits in its
// session's queue, where the slow-client rules and the node's backlog
// (Engine.backlogged) see it. 32 KiB is several round trips' worth of
// presence traffic.
const wsSendBuffer = 32 << 10

// newReader returns the reader of a session's websocket.
func (e *Engine) newReader(nc *wsConn, proto int) *wsReader {
	r := newWSReader(nc, e.opts.maxMessage)
	r.binary, r.v3 = true, proto == 3
	return r
}

// newWSReader returns a reader of nc's frames; limit bounds one message.
func newWSReader(nc *wsConn, limit int) *wsReader {
	r := &wsReader{nc: nc, max: limit}
	if tc, ok := nc.Conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(wsSendBuffer)
	}
	if sc, ok := nc.Conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw = raw
			r.readFD = r.tryRead
		}
	}
	return r
}

// next returns the client's next text message, which stays valid until the
// following call. Control frames met on the way are answered; an error ends
// the connection (errWSClosed after the client's close frame was answered).
func (r *wsReader) next() ([]byte, error) {
	r.recycle()
	for {
		for r.in != nil {
			msg, done, err := r.frame()
			if err != nil || done {
				return msg, err
			}
			if r.short {
				break
			}
		}
		if err := r.fill(); err != nil {
			return nil, err
		}
	}
}

// readText reports whether the next message is the text want.
func (r *wsReader) readText(want string) bool {
	msg, err := r.next()
	if err != nil {
		r.refuse(err)
	}
	return err == nil && string(msg) == want
}

// frame parses and handles the frame at the front of r.in. done reports a
// complete message; with neither a message nor an error, r.short says that
// the frame is not all there yet, or else a frame was handled and the next
// may follow.
func (r *wsReader) frame() (msg []byte, done bool, err error) {
	b := r.in.Bytes()
	r.short = true
	if len(b) < 2 {
		return nil, false, nil
	}
	fin, op := b[0]&0x80 != 0, b[0]&0x0f
	if b[0]&0x70 != 0 || b[1]&0x80 == 0 { // RSV bits (no extension agreed), unmasked
		return nil, false, errWSProtocol
	}
	hdr, n := 6, uint64(b[1]&0x7f)
	switch n {
	case 126:
		hdr = 8
	case 127:
		hdr = 14
	}
	if len(b) < hdr {
		return nil, false, nil
	}
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		n = binary.BigEndian.Uint64(b[2:])
	}
	if err := r.check(fin, op, n); err != nil {
		return nil, false, err
	}
	total := hdr + int(n)
	if len(b) < total {
		return nil, false, nil
	}
	r.short = false
	payload := b[hdr:total]
	mask := b[hdr-4 : hdr]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	r.in.Next(total)
	return r.handle(fin, op, payload)
}

// check validates a frame's header before any of its payload is read: a
// data frame that would take the message past r.max is refused here.
func (r *wsReader) check(fin bool, op byte, n uint64) error {
	switch op {
	case wsClose, wsPing, wsPong:
		if !fin || n > 125 {
			return errWSProtocol
		}
		return nil
	case wsText, wsBinary:
		if r.fragmented {
			return errWSProtocol
		}
		if op == wsBinary && !r.binary {
			return errWSBinary
		}
	case wsContinuation:
		if !r.fragmented {
			return errWSProtocol
		}
	default:
		return errWSProtocol
	}
	sofar := 0
	if r.msg != nil {
		sofar = r.msg.Len()
	}
	if n > uint64(r.max-sofar) {
		return errWSTooLarge
	}
	return nil
}

// handle handles one whole, unmasked frame; see frame for the results.
// Text messages must be UTF-8 (RFC 6455 section 8.1); a fragmented one is
// checked once it is whole. A binary message (taken only by a reader with
// r.binary) is returned in the engine's text form: "b" and base64 (v3: "b4"
// and base64 of the data after the type byte 4).
func (r *wsReader) handle(fin bool, op byte, payload []byte) ([]byte, bool, error) {
	switch op {
	case wsPing:
		return nil, false, r.nc.writeControl(wsPong, payload)
	case wsPong:
		return nil, false, nil
	case wsClose:
		return nil, false, r.closeFrame(payload)
	case wsText, wsBinary:
		r.msgBinary = op == wsBinary
	}
	if fin && !r.fragmented {
		if r.msgBinary {
			return r.binaryPacket(payload)
		}
		if !utf8.Valid(payload) {
			return nil, false, errWSBadUTF8
		}
		return payload, true, nil
	}
	if r.msg == nil {
		r.msg = getBuf()
	}
	r.msg.Write(payload)
	r.fragmented = !fin
	if fin {
		r.handedOut = true
		if r.msgBinary {
			return r.binaryPacket(r.msg.Bytes())
		}
		if !utf8.Valid(r.msg.Bytes()) {
			return nil, false, errWSBadUTF8
		}
		return r.msg.Bytes(), true, nil
	}
	return nil, false, nil
}

// binaryPacket returns a binary message in the engine's text form. A v3
// one must start with the message type byte 4.
func (r *wsReader) binaryPacket(data []byte) ([]byte, bool, error) {
	if !r.v3 {
		return base64.StdEncoding.AppendEncode([]byte{eioBinary}, data), true, nil
	}
	if len(data) == 0 || data[0] != 4 {
		return nil, false, errWSBinary
	}
	return base64.StdEncoding.AppendEncode([]byte{eioBinary, eioMessage}, data[1:]), true, nil
}

// closeFrame answers the client's close frame and returns errWSClosed, or
// errWSProtocol for a malformed one (RFC 6455 sections 5.5.1 and 7.4): a
// body of one byte, a status code that may not be sent, or a reason that is
// not UTF-8. A valid close is echoed with its status code (none for an empty
// body); nothing the client sent after it is read.
func (r *wsReader) closeFrame(payload []byte) error {
	if len(payload) == 1 {
		return errWSProtocol
	}
	if len(payload) >= 2 {
		if !validCloseCode(binary.BigEndian.Uint16(payload)) || !utf8.Valid(payload[2:]) {
			return errWSProtocol
		}
		payload = payload[:2]
	}
	_ = r.nc.writeControl(wsClose, payload)
	return errWSClosed
}

// validCloseCode reports whether a peer may send close status code c (RFC
// 6455 section 7.4 and the IANA registry): 1000-1003 and 1007-1014 are
// defined (1004 is reserved; 1005, 1006 and 1015 are never sent), 1016-2999
// are reserved for the protocol, 3000-4999 are for libraries and
// applications, and anything else is out of range.
func validCloseCode(c uint16) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// fill reads more of the client's bytes into r.in, waiting for them first
// while none have arrived.
func (r *wsReader) fill() error {
	if r.raw == nil {
		if r.in == nil {
			r.in = getBuf()
		}
		n, err := r.nc.Read(r.space())
		r.in.Write(r.in.AvailableBuffer()[:n])
		return err
	}
	if err := r.raw.Read(r.readFD); err != nil {
		return err
	}
	return r.readErr
}

// tryRead is fill's syscall.RawConn callback: it reads what the socket
// holds into a borrowed buffer, or, when it holds nothing, gives the buffer
// back and returns false so that the runtime parks the goroutine until the
// socket is readable.
func (r *wsReader) tryRead(fd uintptr) bool {
	if r.in == nil {
		r.in = getBuf()
	}
	for {
		n, err := syscall.Read(int(fd), r.space())
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if r.in.Len() == 0 {
				putBuf(r.in)
				r.in = nil
			}
			return false
		case err != nil:
			r.readErr = err
		case n == 0:
			r.readErr = io.EOF
		default:
			r.readErr = nil
			r.in.Write(r.in.AvailableBuffer()[:n])
		}
		return true
	}
}

// space returns r.in's free space for one read, at least wsReadChunk. A
// large frame's buffer grows with the bytes that arrive (bytes.Buffer
// doubles), not from its header's claim: a client that announces a frame
// and sends nothing more pins one chunk, not the message limit.
func (r *wsReader) space() []byte {
	r.in.Grow(wsReadChunk)
	b := r.in.AvailableBuffer()
	return b[:cap(b)]
}

// recycle gives back what the last message used: the assembled message,
// and r.in once everything in it is parsed.
func (r *wsReader) recycle() {
	if r.handedOut {
		putBuf(r.msg)
		r.msg, r.handedOut = nil, false
	}
	if r.in != nil && r.in.Len() == 0 {
		putBuf(r.in)
		r.in = nil
	}
}

// release gives back every buffer the reader holds; the reader is done.
func (r *wsReader) release() {
	if r.msg != nil {
		putBuf(r.msg)
		r.msg = nil
	}
	if r.in != nil {
		putBuf(r.in)
		r.in = nil
	}
	r.fragmented, r.handedOut = false, false
}

// refuse answers a client's fault with the matching close frame and
// returns the session's close reason for err.
func (r *wsReader) refuse(err error) string {
	code := 0
	reason := "transport close"
	switch {
	case errors.Is(err, errWSTooLarge):
		code, reason = wsCloseTooBig, "message too large"
	case errors.Is(err, errWSBinary):
		code, reason = wsCloseUnsupported, "binary frame"
	case errors.Is(err, errWSProtocol):
		code, reason = wsCloseProtocol, "websocket protocol error"
	case errors.Is(err, errWSBadUTF8):
		code, reason = wsCloseBadData, "invalid utf-8"
	}
	if code != 0 {
		_ = r.nc.writeControl(wsClose, binary.BigEndian.AppendUint16(nil, uint16(code)))
	}
	return reason
}
