package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"rtm/client"
)

// A node subscribes only to the buckets of its rooms: another node's room in
// another bucket has one subscriber on Redis (its own node), and none of its
// events reach this node. After the last local member leaves, the bucket
// stays subscribed for the linger, then is dropped.
func TestNodeHearsOnlyItsBuckets(t *testing.T) { backends(t, testNodeHearsOnlyItsBuckets) }

func testNodeHearsOnlyItsBuckets(t *testing.T, opts ServerOptions) {
	opts.subLinger = time.Second
	n1, n2 := startNode(t, opts), startNode(t, opts)
	// Rooms in buckets of their own: not each other's, and not the nodes'
	// home buckets, where their sockets' own rooms live.
	rs := roomsInDistinctBuckets(2, homeBucket(n1), homeBucket(n2))
	roomA, roomB := rs[0], rs[1]
	bA, bB := roomBucket(roomA), roomBucket(roomB)
	a, b := dial(t, n1), dial(t, n2)
	join(t, a, roomA, "alice", nil)
	nextPresence(t, a)
	join(t, b, roomB, "bob", nil)
	nextPresence(t, b)

	if got := subscribers(t, n1.srv, bA); got != 1 {
		t.Fatalf("room A's channel has %d subscribers; want 1 (node 1)", got)
	}
	if got := subscribers(t, n1.srv, bB); got != 1 {
		t.Fatalf("room B's channel has %d subscribers; want 1 (node 2)", got)
	}
	if st := bucketState(n1.srv, bB); st != subNone {
		t.Fatalf("node 1 holds room B's bucket in state %d; want none", st)
	}

	// Room B is busy; node 1 hears only room A's own event.
	before := n1.srv.subs.received.Load()
	for i := 0; i < 20; i++ {
		if _, err := b.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
		if e := nextPresence(t, b); e.Type != "update" {
			t.Fatalf("got %+v; want bob's update", e)
		}
	}
	if _, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"x": 1}}); err != nil {
		t.Fatal(err)
	}
	if e := nextPresence(t, a); e.Type != "update" || e.UserID != "alice" {
		t.Fatalf("got %+v; want alice's update", e)
	}
	if got := n1.srv.subs.received.Load() - before; got != 1 {
		t.Fatalf("node 1 received %d messages; want 1 (room A's update)", got)
	}

	// The last member of room A leaves: the bucket is kept for the linger,
	// then unsubscribed.
	left := time.Now()
	if _, err := a.Leave(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if e := nextPresence(t, a); e.Type != "leave" || e.UserID != "alice" {
		t.Fatalf("got %+v; want alice's leave", e)
	}
	waitFor(t, opts.subLinger+10*subPingPeriod, "room A's bucket to be dropped", func() bool {
		return bucketState(n1.srv, bA) == subNone
	})
	if d := time.Since(left); d < opts.subLinger {
		t.Fatalf("room A's bucket dropped %v after the leave; want at least the linger (%v)", d, opts.subLinger)
	}
	if got := subscribers(t, n1.srv, bA); got != 0 {
		t.Fatalf("room A's channel has %d subscribers after the linger; want 0", got)
	}
	// A join in a dropped bucket subscribes again before its script runs.
	join(t, a, roomA, "alice", nil)
	if e := nextPresence(t, a); e.Type != "join" || e.UserID != "alice" {
		t.Fatalf("got %+v; want alice's join", e)
	}
}

// subscribers returns how many subscribers bucket b's events channel has on
// the Redis node that serves it.
func subscribers(t *testing.T, srv *Server, b int) int {
	t.Helper()
	p := srv.presence
	sharded := p.shardChannels.Load()
	ch := p.bucketChannel(b)
	c, err := srv.subs.be.dialSub(tctx(t), srv.subs.be.subAddr(ch, sharded))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub := "NUMSUB"
	if sharded {
		sub = "SHARDNUMSUB"
	}
	r, err := redis.Values(c.Do("PUBSUB", sub, ch))
	if err != nil || len(r) != 2 {
		t.Fatalf("PUBSUB %s: %v, %v", sub, r, err)
	}
	n, _ := redis.Int(r[1], nil)
	return n
}

func bucketState(srv *Server, b int) subState {
	srv.subs.mu.Lock()
	defer srv.subs.mu.Unlock()
	return srv.subs.b[b].state
}

// A join waits until its bucket's subscription is confirmed before its
// script runs: with confirmations held back, the joiner still gets its own
// join event, which the script publishes.
func TestJoinWaitsForItsSubscription(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	const delay = 300 * time.Millisecond
	opts.wrapSubs = func(be subBackend) subBackend { return slowSubs{be, delay} }
	n := startNode(t, opts)
	a := dial(t, n)
	start := time.Now()
	join(t, a, "r", "alice", nil)
	if d := time.Since(start); d < delay {
		t.Fatalf("the join answered after %v, before its subscription (held back %v)", d, delay)
	}
	if e := nextPresence(t, a); e.Type != "join" || e.UserID != "alice" {
		t.Fatalf("got %+v; want alice's own join", e)
	}
}

// slowSubs holds back every subscription command by delay.
type slowSubs struct {
	subBackend
	delay time.Duration
}

func (s slowSubs) dialSub(ctx context.Context, addr string) (redis.Conn, error) {
	c, err := s.subBackend.dialSub(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &slowSubConn{Conn: c, delay: s.delay}, nil
}

// slowSubConn sleeps before flushing a subscription command. It keeps the
// read timeout the subscriptions need.
type slowSubConn struct {
	redis.Conn
	delay   time.Duration
	pending bool // a SUBSCRIBE or SSUBSCRIBE waits for Flush
}

func (c *slowSubConn) Send(cmd string, args ...any) error {
	if strings.HasSuffix(cmd, "SUBSCRIBE") && !strings.Contains(cmd, "UN") {
		c.pending = true
	}
	return c.Conn.Send(cmd, args...)
}

func (c *slowSubConn) Flush() error {
	if c.pending {
		c.pending = false
		time.Sleep(c.delay)
	}
	return c.Conn.Flush()
}

func (c *slowSubConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, d)
}

func (c *slowSubConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	return redis.DoWithTimeout(c.Conn, d, cmd, args...)
}

// A resync whose seq was read before the room's subscription was lost again
// does nothing: the room's seq may have moved past it before the second gap
// (a reshard unsubscribes a slot's channels on its old master, then again on
// its new one, when each is told the slot's owner), and taking it for lost
// history would drop a member that is still there. The second gap's resync
// decides.
func TestStaleResyncAfterSecondGap(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a := dial(t, n)
	const room = "r"
	join(t, a, room, "alice", nil)
	nextPresence(t, a)
	patch := func(v int) {
		t.Helper()
		if _, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"v": v}}); err != nil {
			t.Fatal(err)
		}
		if e := nextPresence(t, a); e.Type != "update" {
			t.Fatalf("got %+v; want alice's update", e)
		}
	}
	patch(1)
	p, h, bs := n.srv.presence, n.srv.hub, []int{roomBucket(room)}

	h.markGap(bs) // the first gap; its resync reads the room's seq
	rooms, gens := h.joinedRooms(bs)
	if len(rooms) != 1 || rooms[0] != room {
		t.Fatalf("joined rooms %v; want [%s]", rooms, room)
	}
	stale, err := p.roomSeqs(tctx(t), rooms)
	if err != nil {
		t.Fatal(err)
	}
	patch(2)      // delivered: the subscription is back
	h.markGap(bs) // and lost again before the first resync is applied
	if told := h.resyncRoom(room, stale[0], gens[0]); told != 0 {
		t.Fatalf("the stale resync (seq %d) told %d sockets; want 0", stale[0], told)
	}
	patch(3) // still joined
	p.resync(tctx(t), bs)
	ev := nextEvent(t, a, 5*time.Second)
	var rs struct{ Seq int64 }
	if ev.Name != "presence:resync" || len(ev.Args) != 1 || json.Unmarshal(ev.Args[0], &rs) != nil || rs.Seq != stale[0]+2 {
		t.Fatalf("got %s %s; want presence:resync with seq %d", ev.Name, ev.Args, stale[0]+2)
	}
	patch(4)
}
