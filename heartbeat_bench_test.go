package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHeartbeat measures the plain heartbeat path end to end: raw
// Engine.IO 4 websocket clients, each joined to a room, send
// presence:heartbeat and wait for its ack, through a node on the tests' real
// Redis (reader, handler call, batcher, script, ack, writer). The clients
// write prebuilt frames and read acks into fixed buffers, so allocs/op is
// the server's. cpu-us/op is this process's CPU time (user and system, the
// clients' few syscalls included; redis-server's not) per heartbeat.
func BenchmarkHeartbeat(b *testing.B) {
	for _, conns := range []int{1, 64} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			opts := testOptions(b)
			opts.Rates = RateLimits{Other: Rate{PerSecond: 1e6, Burst: 1e6}} // heartbeats unlimited
			n := startNode(b, opts)
			pool := make(chan *beatClient, conns)
			for i := range conns {
				pool <- newBeatClient(b, n, fmt.Sprintf("u%d", i))
			}
			var failed atomic.Value
			b.SetParallelism((conns + 1) / 2)
			b.ReportAllocs()
			ru0 := rusage()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := <-pool
				defer func() { pool <- c }()
				for pb.Next() {
					if err := c.beat(); err != nil {
						failed.Store(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(rusage()-ru0)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// rusage returns the process's CPU time so far, user and system.
func rusage() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// beatClient is one joined websocket session sending plain heartbeats.
type beatClient struct {
	nc    net.Conn
	br    *bufio.Reader
	frame []byte // the heartbeat, masked, ack id 1
	pong  []byte // "3", masked
	buf   [16 << 10]byte
}

// newBeatClient connects (through gorilla, which has read nothing past the
// connect packet when it returns: the server sends nothing more unasked)
// and joins on the raw connection.
func newBeatClient(b *testing.B, n *testNode, user string) *beatClient {
	r := dialRaw(b, n, 4, "", "")
	nc := r.c.UnderlyingConn()
	c := &beatClient{nc: nc, br: bufio.NewReader(nc),
		frame: clientFrame(0x81, `421["presence:heartbeat",{"roomId":"bench"}]`),
		pong:  clientFrame(0x81, "3")}
	join := clientFrame(0x81, `420["presence:join",{"roomId":"bench","userId":"`+user+`"}]`)
	if err := c.roundTrip(join, "430["); err != nil {
		b.Fatalf("join: %v", err)
	}
	return c
}

// beat sends one heartbeat and reads until its ack, answering pings.
func (c *beatClient) beat() error { return c.roundTrip(c.frame, "431[") }

// roundTrip sends frame and reads until the ack that starts with prefix,
// which must be a success; it answers pings and skips events meanwhile.
func (c *beatClient) roundTrip(frame []byte, prefix string) error {
	if _, err := c.nc.Write(frame); err != nil {
		return err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return err
		}
		k := int(hdr[1] & 0x7f)
		if k == 126 {
			var l [2]byte
			if _, err := io.ReadFull(c.br, l[:]); err != nil {
				return err
			}
			k = int(binary.BigEndian.Uint16(l[:]))
		}
		if k == 127 || k > len(c.buf) {
			return fmt.Errorf("frame of %d bytes", k)
		}
		p := c.buf[:k]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		switch {
		case k == 1 && p[0] == '2':
			if _, err := c.nc.Write(c.pong); err != nil {
				return err
			}
		case k > len(prefix) && string(p[:len(prefix)]) == prefix:
			if !bytes.HasPrefix(p[len(prefix):], []byte(`{"ok":true`)) {
				return fmt.Errorf("ack %q", p)
			}
			return nil
		}
	}
}
