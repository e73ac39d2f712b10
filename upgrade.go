package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"sync"
)

// This file repairs go-socket.io's polling-to-websocket upgrade.
//
// When the websocket probe succeeds, the library pauses the polling
// transport and waits for the client's upgrade packet ("5") on the
// websocket. The client, though, goes on writing over polling until it has
// received the probe's pong, and sends "5" only once its last POST has
// completed. A POST that arrives in between is refused with 400 "payload:
// paused", which a browser takes for a transport error: the socket drops and
// reconnects, losing what it sent.
//
// We answer such a POST "ok" instead and keep its packets with the session's
// websocket; when the client's "5" frame has gone past, the packets are
// handed to the library as websocket frames, before anything the client
// sends after it. The library reads them where and in the order the client
// meant them.

// wsConns tracks the websocket connections of sessions being upgraded.
type wsConns struct {
	mu    sync.Mutex // guards conns
	conns map[string]*frameLimitConn
}

func (w *wsConns) add(sid string, c *frameLimitConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns == nil {
		w.conns = make(map[string]*frameLimitConn)
	}
	w.conns[sid] = c
}

func (w *wsConns) remove(sid string, c *frameLimitConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns[sid] == c {
		delete(w.conns, sid)
	}
}

func (w *wsConns) get(sid string) *frameLimitConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conns[sid]
}

// handOver gives the packets of a polling body (byte lengths) to the
// session's websocket to be read after the upgrade packet. It reports false
// when there is no websocket for sid or the body is not a text payload.
func (w *wsConns) handOver(sid string, body []byte) bool {
	c := w.get(sid)
	if c == nil {
		return false
	}
	var frames []byte
	for len(body) > 0 {
		colon := bytes.IndexByte(body, ':')
		if colon <= 0 {
			return false
		}
		n, err := strconv.Atoi(string(body[:colon]))
		if err != nil || n < 0 || colon+1+n > len(body) {
			return false
		}
		frames = appendClientFrame(frames, body[colon+1:colon+1+n])
		body = body[colon+1+n:]
	}
	return c.queueAfterUpgrade(frames)
}

// appendClientFrame appends payload as one masked (zero key) text frame, as
// a client would send it.
func appendClientFrame(b, payload []byte) []byte {
	b = append(b, 0x81) // FIN, text
	switch n := len(payload); {
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
	return append(b, payload...)
}

var _ net.Conn = (*frameLimitConn)(nil)
