package main

import (
	"bufio"
	"bytes"
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
		fw := &frameLimitWriter{ResponseWriter: w, limit: uint64(s.opts.MaxMessageBytes)}
		if sid := q.Get("sid"); sid != "" { // a polling session upgrading (upgrade.go)
			fw.up = s.ups.begin(sid)
			defer s.ups.end(fw.up)
			if sock := s.awaitConnect(sid); sock != nil && isPolling(sock.conn) {
				s.parkReader(fw.up)
			}
		}
		w = fw
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
			up := s.ups.get(sid)
			if up != nil && up.holding() && up.keep(body) {
				s.corsHeaders(w, r)
				_, _ = w.Write([]byte("ok"))
				return
			}
			probe := &rejectProbe{ResponseWriter: w, prefix: "payload: paused"}
			s.io.ServeHTTP(probe, r)
			if probe.caught {
				if up == nil || !up.keep(body) {
					http.Error(w, "payload: paused", http.StatusBadRequest)
					return
				}
				_, _ = w.Write([]byte("ok")) // the library has set the CORS headers
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

// corsHeaders sets the headers go-socket.io's polling transport sets, for a
// response we give in its place.
func (s *Server) corsHeaders(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Set("Access-Control-Allow-Credentials", "true")
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
