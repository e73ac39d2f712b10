package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
)

// frameLimitWriter hands gorilla/websocket a connection that enforces the
// frame limit when it hijacks the upgrade request. For the upgrade of a
// polling session, up is that upgrade (upgrade.go).
type frameLimitWriter struct {
	http.ResponseWriter
	limit uint64
	up    *upgrade
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
	fc := &frameLimitConn{Conn: c, limit: w.limit, up: w.up}
	if w.up != nil {
		w.up.mu.Lock()
		w.up.conn = fc
		w.up.mu.Unlock()
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
	up    *upgrade // nil unless this websocket upgrades a polling session

	hdr       []byte  // header bytes of the frame being parsed
	remaining uint64  // payload bytes left in the current frame
	message   uint64  // payload bytes of the current message so far
	mask      [4]byte // the current frame's mask key
	candidate bool    // the current frame is a one-byte text frame
	upgraded  bool    // the client's upgrade packet has gone past
	held      []byte  // bytes read after the upgrade frame, not yet returned
	heldErr   error   // the read error that came with them
	closeOnce sync.Once

	outMu      sync.Mutex // guards handingOut
	handingOut []byte     // frames to return before anything else
}

func (c *frameLimitConn) Read(p []byte) (int, error) {
	if c.up != nil {
		c.outMu.Lock()
		if len(c.handingOut) > 0 {
			n := copy(p, c.handingOut)
			c.handingOut = c.handingOut[n:]
			c.outMu.Unlock()
			return n, nil
		}
		c.outMu.Unlock()
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
	if end >= 0 && end < n { // hand out the kept frames before the rest
		c.held = append(append([]byte(nil), p[end:n]...), c.held...)
		if c.heldErr == nil {
			c.heldErr = err
		}
		return end, nil
	}
	return n, err
}

// Close tells the upgrade, if any, and closes the connection.
func (c *frameLimitConn) Close() error {
	c.closeOnce.Do(func() {
		if c.up != nil {
			c.up.wsEnded()
		}
	})
	return c.Conn.Close()
}

// handOut adds frames to return from Read before anything else.
func (c *frameLimitConn) handOut(frames []byte) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.handingOut = append(c.handingOut, frames...)
}

// scan advances the frame parser over b. It returns the offset in b just
// past the client's upgrade frame when that frame ends in b, else -1.
func (c *frameLimitConn) scan(b []byte) (int, error) {
	for i := 0; i < len(b); {
		if c.remaining > 0 {
			k := min(uint64(len(b)-i), c.remaining)
			if c.candidate && b[i]^c.mask[0] == '5' {
				c.remaining, c.candidate, c.upgraded = 0, false, true
				if c.up != nil {
					c.up.sawUpgradePacket(c)
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
