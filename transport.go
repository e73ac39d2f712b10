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
		w = &frameLimitWriter{ResponseWriter: w, limit: uint64(s.opts.MaxMessageBytes)}
	}
	sid := q.Get("sid")
	for {
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		if sid == "" || !s.young(sid) {
			s.io.ServeHTTP(w, r)
			return
		}
		// go-socket.io registers a session on a goroutine of its own after
		// answering the handshake: a request that overtakes it is told
		// "invalid sid". Retry such a request until the session exists.
		probe := &sidProbe{ResponseWriter: w}
		s.io.ServeHTTP(probe, r)
		if !probe.unknown {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sidProbe passes a response through unless it is go-socket.io's 400
// "invalid sid value", which it swallows and reports as unknown.
type sidProbe struct {
	http.ResponseWriter
	unknown bool
	started bool
}

func (p *sidProbe) WriteHeader(code int) {
	if code == http.StatusBadRequest && !p.started {
		p.unknown = true
		return
	}
	p.started = true
	p.ResponseWriter.WriteHeader(code)
}

func (p *sidProbe) Write(b []byte) (int, error) {
	if p.unknown {
		if !bytes.HasPrefix(b, []byte("invalid sid")) {
			// A 400 for another reason: pass it on after all.
			p.unknown = false
			p.started = true
			p.ResponseWriter.WriteHeader(http.StatusBadRequest)
			return p.ResponseWriter.Write(b)
		}
		return len(b), nil
	}
	p.started = true
	return p.ResponseWriter.Write(b)
}

// Hijack lets a websocket upgrade through the probe.
func (p *sidProbe) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := p.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	p.started = true
	return h.Hijack()
}

// Flush lets long-polling responses through the probe.
func (p *sidProbe) Flush() {
	if f, ok := p.ResponseWriter.(http.Flusher); ok && !p.unknown {
		f.Flush()
	}
}

// admit decides on a handshake; a zero status admits it.
func (s *Server) admit(r *http.Request) (int, string) {
	s.mu.Lock()
	draining := s.draining
	ipCount := s.perIP[hostOf(remoteAddr(r.RemoteAddr))]
	s.mu.Unlock()
	switch {
	case draining:
		return http.StatusServiceUnavailable, "server shutting down"
	case !s.originAllowed(r.Header.Get("Origin")):
		return http.StatusForbidden, "origin not allowed"
	case s.opts.MaxSocketsPerIP > 0 && ipCount >= s.opts.MaxSocketsPerIP:
		return http.StatusTooManyRequests, "too many connections from this address"
	}
	if len(s.opts.JWTSecret) > 0 {
		if _, err := verifyToken(s.opts.JWTSecret, r.URL.Query().Get("token")); err != nil {
			s.log.Info("handshake refused", "reason", err.Error(), "ip", hostOf(remoteAddr(r.RemoteAddr)))
			return http.StatusUnauthorized, "unauthorized"
		}
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
// frame limit when it hijacks the upgrade request.
type frameLimitWriter struct {
	http.ResponseWriter
	limit uint64
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
	return &frameLimitConn{Conn: c, limit: w.limit}, rw, nil
}

// errFrameTooLarge ends a websocket whose client sent an oversized message.
var errFrameTooLarge = errors.New("websocket message exceeds the size limit")

// frameLimitConn watches the websocket frames a client sends as they stream
// past (RFC 6455 framing) and fails the read as soon as a frame header
// announces a message larger than limit, before its payload is read: the
// library has no read limit and would buffer any size. Only the reading side
// is parsed; bytes pass through unchanged.
type frameLimitConn struct {
	net.Conn
	limit uint64

	hdr       []byte // header bytes of the frame being parsed
	remaining uint64 // payload bytes left in the current frame
	message   uint64 // payload bytes of the current message so far
}

func (c *frameLimitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if ferr := c.scan(p[:n]); ferr != nil {
		_ = c.Conn.Close()
		return 0, ferr
	}
	return n, err
}

// scan advances the frame parser over b.
func (c *frameLimitConn) scan(b []byte) error {
	for len(b) > 0 {
		if c.remaining > 0 {
			k := min(uint64(len(b)), c.remaining)
			c.remaining -= k
			b = b[k:]
			continue
		}
		c.hdr = append(c.hdr, b[0])
		b = b[1:]
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
		c.hdr = c.hdr[:0]
		if opcode < 8 { // data frames; control frames are small by the RFC
			c.message += size
			if c.message > c.limit {
				return errFrameTooLarge
			}
			if fin {
				c.message = 0
			}
		}
		c.remaining = size
	}
	return nil
}
