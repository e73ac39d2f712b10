package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A client that took everything it was sent is reading, however long it
// was idle: one frame larger than the queue bound (a big snapshot) reaches
// it, and it is not dropped as slow.
func TestBigFrameToIdleClient(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.OutboundQueueBytes = 4 << 10
	opts.slowAfter = 50 * time.Millisecond
	n := startNode(t, opts)
	c := dial(t, n)
	var sock *Socket
	waitFor(t, 5*time.Second, "the socket registered", func() bool { sock = n.srv.socket(c.ID()); return sock != nil })
	waitFor(t, 5*time.Second, "the client idle for longer than slowAfter", func() bool {
		sock.sess.wmu.Lock()
		defer sock.sess.wmu.Unlock()
		return len(sock.sess.queue) == 0 && !sock.sess.writing && time.Since(sock.sess.lastTake) > 2*opts.slowAfter
	})
	big := json.RawMessage(`"` + strings.Repeat("x", 3*opts.OutboundQueueBytes) + `"`)
	if !sock.Send("big", big) {
		t.Fatal("Send refused the big frame: the idle client was taken for a slow one")
	}
	e := nextEvent(t, c, 5*time.Second)
	if e.Name != "big" || len(e.Args) != 1 || len(e.Args[0]) != len(big) {
		t.Fatalf("got %s with %d arguments; want big with %d bytes", e.Name, len(e.Args), len(big))
	}
	if n.srv.socket(c.ID()) == nil {
		t.Fatal("the client was dropped")
	}
}
