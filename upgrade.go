package main

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	socketio "github.com/googollee/go-socket.io"
)

// This file repairs go-socket.io's upgrade from polling to websocket, which
// loses sessions and messages in two ways:
//
//   - Once the websocket probe has succeeded, the library pauses polling and
//     waits for the client's upgrade packet ("5"). Meanwhile the session's
//     reader spins on the paused polling connection, and when the library
//     swaps transports and closes that connection, the reader can be inside
//     it: it reads EOF and the session ends.
//   - The client goes on writing over polling until it has the probe's pong,
//     and sends "5" only after its last POST completes. A POST that arrives
//     while polling is paused is refused (400 "payload: paused"), which a
//     browser takes for a transport error.
//
// So, when a websocket comes to upgrade a polling session, we first park the
// session's reader in a handler of ours (holdEvent), where the swap cannot
// hurt it. While it is parked, POSTs are answered "ok" and their packets
// kept; when the client's "5" frame has gone past on the websocket, they are
// handed to the library as websocket frames, before anything the client
// sends after it. The reader is released once the library reports the
// websocket as the session's transport. If the upgrade fails instead, the
// kept packets are fed back over polling.

// holdEvent is the internal event that parks a session's reader. A client
// sending it gets nothing: the handler acts only for an upgrade in progress.
const holdEvent = "rtm:upgrade-hold"

// upgrades tracks the sessions being upgraded.
type upgrades struct {
	mu sync.Mutex // guards m
	m  map[string]*upgrade
}

// upgrade is one session's move from polling to websocket.
type upgrade struct {
	sid    string
	parked chan struct{} // closed when the reader is parked
	fived  chan struct{} // closed when "5" has gone past, or the websocket ended

	mu       sync.Mutex // guards the following fields
	conn     *frameLimitConn
	packets  [][]byte // polling packets kept for after the upgrade
	upgraded bool     // "5" has gone past
	ended    bool     // fived is closed
	released bool     // the reader is no longer parked
}

func (u *upgrades) begin(sid string) *upgrade {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[string]*upgrade)
	}
	up := &upgrade{sid: sid, parked: make(chan struct{}), fived: make(chan struct{})}
	u.m[sid] = up
	return up
}

func (u *upgrades) get(sid string) *upgrade {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[sid]
}

func (u *upgrades) end(up *upgrade) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m[up.sid] == up {
		delete(u.m, up.sid)
	}
}

// parkReader feeds the session an internal holdEvent over polling and waits
// until its reader is parked in holdReader. It gives up, leaving the upgrade
// to the library as it is, when that does not happen within a second.
func (s *Server) parkReader(up *upgrade) {
	body := []byte(`42["` + holdEvent + `"]`)
	body = append(strconv.AppendInt(nil, int64(len(body)), 10), append([]byte(":"), body...)...)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if s.pollInternally(up.sid, body) {
			break
		}
		time.Sleep(2 * time.Millisecond) // a client POST holds the payload: try again
	}
	select {
	case <-up.parked:
	case <-time.After(time.Until(deadline)):
	}
}

// pollInternally posts a polling body to the session as if its client had,
// and reports whether the library took it.
func (s *Server) pollInternally(sid string, body []byte) bool {
	r := httptest.NewRequest(http.MethodPost, "/socket.io/?EIO=3&transport=polling&sid="+sid, bytes.NewReader(body))
	r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	w := httptest.NewRecorder()
	s.io.ServeHTTP(w, r)
	return w.Code == http.StatusOK
}

// holdReader is holdEvent's handler: it runs on the session's reader and
// keeps it there until the upgrade is over.
func (s *Server) holdReader(c socketio.Conn) {
	up := s.ups.get(c.ID())
	if up == nil {
		return
	}
	up.mu.Lock()
	select {
	case <-up.parked:
		up.mu.Unlock()
		return // parked already: this one is not ours
	default:
		close(up.parked)
	}
	up.mu.Unlock()
	select {
	case <-up.fived:
	case <-time.After(s.opts.PingTimeout):
	}
	for i := 0; i < 100 && isPolling(c); i++ { // the swap follows "5" at once
		time.Sleep(time.Millisecond)
	}
	up.mu.Lock()
	up.released = true
	upgraded, packets := up.upgraded, up.packets
	up.packets = nil
	up.mu.Unlock()
	if !upgraded && len(packets) > 0 { // feed them back once the reader is free
		s.spawn(func() { s.pollInternally(up.sid, joinPayload(packets)) })
	}
}

func isPolling(c socketio.Conn) bool {
	u := c.URL()
	return u.Query().Get("transport") != "websocket"
}

// keep takes a polling body while the reader is parked or polling is
// paused. It reports false when the upgrade can take no more packets (the
// reader is released and the upgrade failed).
func (up *upgrade) keep(body []byte) bool {
	packets, ok := splitPayload(body)
	if !ok {
		return false
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	switch {
	case up.upgraded && up.conn != nil:
		up.conn.handOut(framesOf(packets))
	case up.released:
		return false
	default:
		up.packets = append(up.packets, packets...)
	}
	return true
}

// holding reports whether the reader is parked: POSTs must not reach it.
func (up *upgrade) holding() bool {
	up.mu.Lock()
	defer up.mu.Unlock()
	select {
	case <-up.parked:
		return !up.released
	default:
		return false
	}
}

// sawUpgradePacket is called by the websocket when "5" has gone past: the
// kept packets follow it.
func (up *upgrade) sawUpgradePacket(c *frameLimitConn) {
	up.mu.Lock()
	up.upgraded = true
	packets := up.packets
	up.packets = nil
	c.handOut(framesOf(packets))
	up.endLocked()
	up.mu.Unlock()
}

// wsEnded is called when the websocket closes.
func (up *upgrade) wsEnded() {
	up.mu.Lock()
	up.endLocked()
	up.mu.Unlock()
}

func (up *upgrade) endLocked() {
	if !up.ended {
		up.ended = true
		close(up.fived)
	}
}

// splitPayload splits a polling text payload (byte lengths) into packets.
func splitPayload(body []byte) ([][]byte, bool) {
	var packets [][]byte
	for len(body) > 0 {
		colon := bytes.IndexByte(body, ':')
		if colon <= 0 {
			return nil, false
		}
		n, err := strconv.Atoi(string(body[:colon]))
		if err != nil || n < 0 || colon+1+n > len(body) {
			return nil, false
		}
		packets = append(packets, body[colon+1:colon+1+n])
		body = body[colon+1+n:]
	}
	return packets, true
}

// joinPayload is the inverse of splitPayload.
func joinPayload(packets [][]byte) []byte {
	var b []byte
	for _, p := range packets {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
	}
	return b
}

// framesOf encodes packets as masked (zero key) text frames, as a client
// would send them.
func framesOf(packets [][]byte) []byte {
	var b []byte
	for _, p := range packets {
		b = append(b, 0x81) // FIN, text
		switch n := len(p); {
		case n < 126:
			b = append(b, 0x80|byte(n))
		case n <= 0xffff:
			b = append(b, 0x80|126)
			b = binary.BigEndian.AppendUint16(b, uint16(n))
		default:
			b = append(b, 0x80|127)
			b = binary.BigEndian.AppendUint64(b, uint64(n))
		}
		b = append(b, 0, 0, 0, 0) // mask key 0: the payload stays as it is
		b = append(b, p...)
	}
	return b
}
