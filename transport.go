package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// This file is the HTTP boundary in front of go-socket.io: what the library
// does not do for itself, done before it sees a request.

// serveSocketIO checks a request and hands it to go-socket.io. A handshake
// (no sid yet) is refused while the node drains, from an origin outside the
// allowlist, without a valid token when auth is on, and beyond the per-IP
// socket cap: refused here, the library never creates a session for it. Every
// polling body is bounded and its packet lengths repaired; every websocket
// gets the frame limit.
func (s *Server) serveSocketIO(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("sid") == "" {
		if status, msg := s.admit(r); status != 0 {
			s.metrics.refused(strconv.Itoa(status))
			writeJSONError(w, status, msg)
			return
		}
	}
	if !s.originAllowed(r.Header.Get("Origin")) {
		writeJSONError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	var body []byte
	if r.Method == http.MethodPost && q.Get("transport") == "polling" {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, int64(2*s.opts.MaxMessageBytes)))
		if err != nil {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		if fixed, ok := utf16LengthsToBytes(body); ok {
			body = fixed
		}
	}
	if q.Get("transport") == "websocket" {
		w = &frameLimitWriter{ResponseWriter: w, limit: uint64(s.opts.MaxMessageBytes), sid: q.Get("sid"), conns: &s.ws}
	}
	s.serve(w, r, q.Get("sid"), body)
}

// serve hands a checked request to go-socket.io, working around two of its
// races: a request that overtakes the registration of its session (retried)
// and a polling POST caught by an upgrade (handed over, see upgrade.go).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, sid string, body []byte) {
	for {
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		if sid == "" {
			s.io.ServeHTTP(w, r)
			return
		}
		if !s.young(sid) {
			if body == nil {
				s.io.ServeHTTP(w, r)
				return
			}
			probe := &rejectProbe{ResponseWriter: w, prefix: "payload: paused"}
			s.io.ServeHTTP(probe, r)
			if probe.caught {
				if !s.ws.handOver(sid, body) {
					http.Error(w, "payload: paused", http.StatusBadRequest)
					return
				}
				_, _ = w.Write([]byte("ok"))
			}
			return
		}
		// go-socket.io registers a session on a goroutine of its own after
		// answering the handshake: a request that overtakes it is told
		// "invalid sid". Retry such a request until the session exists.
		probe := &rejectProbe{ResponseWriter: w, prefix: "invalid sid"}
		s.io.ServeHTTP(probe, r)
		if !probe.caught {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rejectProbe passes a response through unless it is go-socket.io's 400
// whose body starts with prefix, which it swallows and reports as caught.
type rejectProbe struct {
	http.ResponseWriter
	prefix  string
	caught  bool
	started bool
}

func (p *rejectProbe) WriteHeader(code int) {
	if code == http.StatusBadRequest && !p.started {
		p.caught = true
		return
	}
	p.started = true
	p.ResponseWriter.WriteHeader(code)
}

func (p *rejectProbe) Write(b []byte) (int, error) {
	if p.caught {
		if !bytes.HasPrefix(b, []byte(p.prefix)) {
			// A 400 for another reason: pass it on after all.
			p.caught, p.started = false, true
			p.ResponseWriter.WriteHeader(http.StatusBadRequest)
			return p.ResponseWriter.Write(b)
		}
		return len(b), nil
	}
	p.started = true
	return p.ResponseWriter.Write(b)
}

// Hijack lets a websocket upgrade through the probe.
func (p *rejectProbe) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := p.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	p.started = true
	return h.Hijack()
}

// Flush lets long-polling responses through the probe.
func (p *rejectProbe) Flush() {
	if f, ok := p.ResponseWriter.(http.Flusher); ok && !p.caught {
		f.Flush()
	}
}

// admit decides on a handshake; a zero status admits it.
func (s *Server) admit(r *http.Request) (int, string) {
	ip := hostOf(remoteAddr(r.RemoteAddr))
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	switch {
	case draining:
		return http.StatusServiceUnavailable, "server shutting down"
	case !s.originAllowed(r.Header.Get("Origin")):
		return http.StatusForbidden, "origin not allowed"
	}
	if len(s.opts.JWTSecret) > 0 {
		if _, err := verifyToken(s.opts.JWTSecret, r.URL.Query().Get("token")); err != nil {
			s.log.Info("handshake refused", "reason", err.Error(), "ip", ip)
			return http.StatusUnauthorized, "unauthorized"
		}
	}
	if !s.reserveIPSlot(ip) {
		return http.StatusTooManyRequests, "too many connections from this address"
	}
	return 0, ""
}

// originAllowed reports whether a browser from origin may connect. Requests
// without an Origin header do not come from a browser page and are allowed.
func (s *Server) originAllowed(origin string) bool {
	return origin == "" || len(s.opts.AllowedOrigins) == 0 || slices.Contains(s.opts.AllowedOrigins, origin)
}

type addrString string

func (a addrString) Network() string { return "tcp" }
func (a addrString) String() string  { return string(a) }

func remoteAddr(s string) net.Addr { return addrString(s) }

// writeJSONError answers an HTTP error the way Engine.IO does, as JSON.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(canonicalJSON(map[string]any{"code": status, "message": msg}))
}

// utf16LengthsToBytes rewrites an Engine.IO v3 text payload
// ("<len>:<packet><len>:<packet>...") whose lengths count UTF-16 code units,
// as JavaScript clients count them, into one whose lengths count bytes, as
// go-socket.io reads them. It reports false for anything else (binary
// payloads, ASCII-only payloads that need nothing, malformed ones: those go
// to the library unchanged).
func utf16LengthsToBytes(b []byte) ([]byte, bool) {
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return nil, false
	}
	ascii := true
	for _, c := range b {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return nil, false
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		colon := bytes.IndexByte(b, ':')
		if colon <= 0 {
			return nil, false
		}
		units, err := strconv.Atoi(string(b[:colon]))
		if err != nil || units < 0 {
			return nil, false
		}
		b = b[colon+1:]
		n := 0
		for units > 0 {
			if n >= len(b) {
				return nil, false
			}
			r, size := utf8.DecodeRune(b[n:])
			n += size
			if r > 0xffff {
				units -= 2
			} else {
				units--
			}
		}
		out = strconv.AppendInt(out, int64(n), 10)
		out = append(out, ':')
		out = append(out, b[:n]...)
		b = b[n:]
	}
	return out, true
}

// frameLimitWriter hands gorilla/websocket a connection that enforces the
// frame limit when it hijacks the upgrade request. An upgrade of an existing
// session (sid set) is tracked in conns for the handover of upgrade.go.
type frameLimitWriter struct {
	http.ResponseWriter
	limit uint64
	sid   string
	conns *wsConns
}

func (w *frameLimitWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	c, rw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	fc := &frameLimitConn{Conn: c, limit: w.limit}
	if w.sid != "" {
		fc.sid, fc.conns = w.sid, w.conns
		w.conns.add(w.sid, fc)
	}
	return fc, rw, nil
}

// errFrameTooLarge ends a websocket whose client sent an oversized message.
var errFrameTooLarge = errors.New("websocket message exceeds the size limit")

// frameLimitConn watches the websocket frames a client sends as they stream
// past (RFC 6455 framing) and fails the read as soon as a frame header
// announces a message larger than limit, before its payload is read: the
// library has no read limit and would buffer any size. It also finds the
// client's upgrade packet ("5") and hands the library, right after it, the
// frames queued by upgrade.go. Bytes from the network pass through unchanged.
// Read is called by one goroutine at a time (gorilla's reader).
type frameLimitConn struct {
	net.Conn
	limit uint64
	sid   string
	conns *wsConns // nil unless this websocket upgrades a session

	hdr        []byte  // header bytes of the frame being parsed
	remaining  uint64  // payload bytes left in the current frame
	message    uint64  // payload bytes of the current message so far
	mask       [4]byte // the current frame's mask key
	candidate  bool    // the current frame is a one-byte text frame
	held       []byte  // bytes read after the upgrade frame, not yet returned
	heldErr    error   // the read error that came with them
	closeOnce  sync.Once
	upgradeMu  sync.Mutex // guards the following fields
	upgraded   bool       // the client's upgrade packet has gone past
	queued     []byte     // frames to hand over after the upgrade packet
	handingOut []byte     // frames being handed over now
}

func (c *frameLimitConn) Read(p []byte) (int, error) {
	if c.conns != nil {
		c.upgradeMu.Lock()
		if len(c.handingOut) > 0 {
			n := copy(p, c.handingOut)
			c.handingOut = c.handingOut[n:]
			c.upgradeMu.Unlock()
			return n, nil
		}
		c.upgradeMu.Unlock()
	}
	var n int
	var err error
	if len(c.held) > 0 {
		n = copy(p, c.held)
		c.held = c.held[n:]
		if len(c.held) == 0 {
			err, c.heldErr = c.heldErr, nil
		}
	} else {
		n, err = c.Conn.Read(p)
	}
	end, ferr := c.scan(p[:n])
	if ferr != nil {
		_ = c.Close()
		return 0, ferr
	}
	if end >= 0 && end < n { // hand over the queued frames before the rest
		c.held = append(append([]byte(nil), p[end:n]...), c.held...)
		if c.heldErr == nil {
			c.heldErr = err
		}
		return end, nil
	}
	return n, err
}

// Close unregisters the connection and closes it.
func (c *frameLimitConn) Close() error {
	c.closeOnce.Do(func() {
		if c.conns != nil {
			c.conns.remove(c.sid, c)
		}
	})
	return c.Conn.Close()
}

// queueAfterUpgrade adds frames to hand over after the upgrade packet (at
// once if it has gone past already).
func (c *frameLimitConn) queueAfterUpgrade(frames []byte) bool {
	c.upgradeMu.Lock()
	defer c.upgradeMu.Unlock()
	if c.upgraded {
		c.handingOut = append(c.handingOut, frames...)
	} else {
		c.queued = append(c.queued, frames...)
	}
	return true
}

// scan advances the frame parser over b. It returns the offset in b just
// past the client's upgrade frame when that frame ends in b, else -1.
func (c *frameLimitConn) scan(b []byte) (int, error) {
	for i := 0; i < len(b); {
		if c.remaining > 0 {
			k := min(uint64(len(b)-i), c.remaining)
			if c.candidate && b[i]^c.mask[0] == '5' {
				c.remaining, c.candidate = 0, false
				if c.conns != nil {
					c.upgradeMu.Lock()
					c.upgraded = true
					c.handingOut, c.queued = append(c.handingOut, c.queued...), nil
					c.upgradeMu.Unlock()
					return i + 1, nil
				}
				i++
				continue
			}
			c.candidate = false
			c.remaining -= k
			i += int(k)
			continue
		}
		c.hdr = append(c.hdr, b[i])
		i++
		need := 2
		if len(c.hdr) >= 2 {
			switch c.hdr[1] & 0x7f {
			case 126:
				need += 2
			case 127:
				need += 8
			}
			if c.hdr[1]&0x80 != 0 {
				need += 4
			}
		}
		if len(c.hdr) < need {
			continue
		}
		var size uint64
		switch l := c.hdr[1] & 0x7f; l {
		case 126:
			size = uint64(binary.BigEndian.Uint16(c.hdr[2:4]))
		case 127:
			size = binary.BigEndian.Uint64(c.hdr[2:10])
		default:
			size = uint64(l)
		}
		fin, opcode := c.hdr[0]&0x80 != 0, c.hdr[0]&0x0f
		if c.hdr[1]&0x80 != 0 {
			copy(c.mask[:], c.hdr[need-4:need])
		} else {
			c.mask = [4]byte{}
		}
		c.hdr = c.hdr[:0]
		if opcode < 8 { // data frames; control frames are small by the RFC
			c.message += size
			if c.message > c.limit {
				return -1, errFrameTooLarge
			}
			if fin {
				c.message = 0
			}
		}
		c.remaining = size
		c.candidate = !c.upgraded && opcode == 1 && fin && size == 1
	}
	return -1, nil
}
