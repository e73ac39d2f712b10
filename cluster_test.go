package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"rtm/client"
)

// Two nodes share one Redis: joins, updates, leaves and chat cross them in order.
func TestCrossNode(t *testing.T) { backends(t, testCrossNode) }

func testCrossNode(t *testing.T, opts ServerOptions) {
	n1, n2 := startNode(t, opts), startNode(t, opts)
	a, b := dial(t, n1), dial(t, n2)
	ackA := join(t, a, "r", "alice", nil)
	nextPresence(t, a)
	ackB := join(t, b, "r", "bob", map[string]any{"v": 0})
	wantEvent(t, nextPresence(t, a), "join", 2, "bob", ackB.Self.ConnID)
	wantEvent(t, nextPresence(t, b), "join", 2, "bob", ackB.Self.ConnID)

	ctx := tctx(t)
	for i := 1; i <= 5; i++ {
		if _, err := b.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"v": i}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		e := nextPresence(t, a)
		if e.Type != "update" || e.Seq != int64(2+i) || string(e.State) != fmt.Sprintf(`{"v":%d}`, i) {
			t.Fatalf("update %d: got %+v %s", i, e, e.State)
		}
		nextPresence(t, b)
	}
	if _, _, err := a.Chat(ctx, "hi bob"); err != nil {
		t.Fatal(err)
	}
	for {
		e := nextEvent(t, b, 5*time.Second)
		if e.Name == "chat:message" {
			m, _ := client.ParseChatMessage(e)
			if m.Text != "hi bob" || m.ConnID != ackA.Self.ConnID {
				t.Fatalf("got %+v", m)
			}
			break
		}
	}
	if _, err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	e := nextPresence(t, b)
	if e.Type != "leave" || e.UserID != "alice" || e.Reason != "leave" || e.Seq != 8 {
		t.Fatalf("got %+v", e)
	}
}

// A dropped socket's connection survives the grace; a resume from a new
// socket (on another node) takes it over silently; the old socket is fenced.
func TestResumeAfterDrop(t *testing.T) { backends(t, testResumeAfterDrop) }

func testResumeAfterDrop(t *testing.T, opts ServerOptions) {
	opts.Presence.DisconnectGrace = 2 * time.Second
	n1, n2 := startNode(t, opts), startNode(t, opts)
	a, obs := dial(t, n1), dial(t, n2)
	join(t, obs, "r", "obs", nil)
	nextPresence(t, obs)
	ack := join(t, a, "r", "alice", map[string]any{"s": "x"})
	nextPresence(t, obs)

	_ = a.Drop()
	a2 := dial(t, n2)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &client.Self{ConnID: ack.Self.ConnID, Epoch: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Self.ConnID != ack.Self.ConnID || res.Self.Epoch != 2 || res.Snapshot.Seq != 2 || len(res.Snapshot.Connections) != 2 {
		t.Fatalf("got %+v; want the same connId at epoch 2, seq 2", res)
	}
	noEvent(t, obs, 2500*time.Millisecond) // past the grace: no leave, no join
	noEvent(t, a2, 10*time.Millisecond)

	// A state given with a resume is merged and announced once.
	_ = a2.Drop()
	a3 := dial(t, n1)
	res, err = a3.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", State: map[string]any{"s": "y"},
		Resume: &client.Self{ConnID: ack.Self.ConnID, Epoch: 2}})
	if err != nil || res.Self.Epoch != 3 || res.Snapshot.Seq != 3 {
		t.Fatalf("got %+v, %v; want epoch 3 and seq 3", res, err)
	}
	for _, w := range []*client.Conn{obs, a3} {
		e := nextPresence(t, w)
		if e.Type != "update" || e.Seq != 3 || e.Epoch != 3 || string(e.State) != `{"s":"y"}` {
			t.Fatalf("got %+v %s; want one update", e, e.State)
		}
	}
	noEvent(t, obs, 100*time.Millisecond)

	// A resume with a wrong epoch or user is a fresh join.
	a4 := dial(t, n2)
	res, err = a4.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &client.Self{ConnID: ack.Self.ConnID, Epoch: 1}})
	if err != nil || res.Self.ConnID == ack.Self.ConnID || res.Self.Epoch != 1 {
		t.Fatalf("got %+v, %v; want a fresh connection", res, err)
	}
	a5 := dial(t, n2)
	res, err = a5.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "mallory", Resume: &client.Self{ConnID: ack.Self.ConnID, Epoch: 3}})
	if err != nil || res.Self.ConnID == ack.Self.ConnID {
		t.Fatalf("got %+v, %v; another user must not take the connection over", res, err)
	}
}

// A resume while the old socket is still connected fences the old socket:
// it gets no more events and every write it attempts fails or does nothing.
func TestResumeFencesOldSocket(t *testing.T) { backends(t, testResumeFencesOldSocket) }

func testResumeFencesOldSocket(t *testing.T, opts ServerOptions) {
	n1, n2 := startNode(t, opts), startNode(t, opts)
	old, obs := dial(t, n1), dial(t, n2)
	ack := join(t, old, "r", "alice", nil)
	nextPresence(t, old)
	join(t, obs, "r", "obs", nil)
	nextPresence(t, old)
	nextPresence(t, obs)

	fresh := dial(t, n2)
	res, err := fresh.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &client.Self{ConnID: ack.Self.ConnID, Epoch: 1}})
	if err != nil || res.Self.ConnID != ack.Self.ConnID || res.Self.Epoch != 2 {
		t.Fatalf("got %+v, %v", res, err)
	}
	ctx := tctx(t)
	_, err = old.Heartbeat(ctx, client.HeartbeatRequest{})
	wantCode(t, err, "not_joined")
	_, _, err = old.Chat(ctx, "from the past")
	wantCode(t, err, "not_joined")
	if removed, err := old.Leave(ctx); err != nil || removed {
		t.Fatalf("old leave: got %v, %v; want false", removed, err)
	}
	if _, err := obs.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"k": 1}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Conn{fresh, obs} {
		if e := nextPresence(t, c); e.Type != "update" || e.UserID != "obs" {
			t.Fatalf("got %+v", e)
		}
	}
	noEvent(t, old, 200*time.Millisecond)
	_ = old.Close() // its disconnect removes nothing
	noEvent(t, obs, opts.Presence.DisconnectGrace+300*time.Millisecond)
	if hb, err := fresh.Heartbeat(ctx, client.HeartbeatRequest{Epoch: ptr(int64(2))}); err != nil || hb.Epoch != 2 {
		t.Fatalf("got %+v, %v", hb, err)
	}
}

// Without a resume, a dropped socket leaves with reason disconnect once the
// grace has passed, and not before.
func TestDisconnectGrace(t *testing.T) { backends(t, testDisconnectGrace) }

func testDisconnectGrace(t *testing.T, opts ServerOptions) {
	interval := opts.Presence.ReaperInterval
	slack := 20 * interval
	grace := 2 * slack // 2× the grace ends well after grace+interval+slack
	opts.Presence.DisconnectGrace = grace
	n := startNode(t, opts)
	a, a2, obs := dial(t, n), dial(t, n), dial(t, n)
	join(t, obs, "r", "obs", nil)
	nextPresence(t, obs)
	join(t, a, "r", "alice", nil)
	nextPresence(t, obs)
	start := time.Now()
	_ = a.Drop()
	e := nextPresence(t, obs)
	// The reaper's leave takes the next seq (3), like any other event.
	if e.Type != "leave" || e.Reason != "disconnect" || e.UserID != "alice" || !e.UserLeft || e.Seq != 3 {
		t.Fatalf("got %+v; want alice's leave, reason disconnect, seq 3", e)
	}
	// Bounded from both sides: not before the grace, and within one reaper
	// interval after it plus a slack of a few intervals for delivery. The
	// grace is many intervals long, so a deadline of 2× the grace (or 0.5×)
	// falls far outside.
	d := time.Since(start)
	if lo, hi := grace, grace+interval+slack; d < lo || d > hi {
		t.Fatalf("leave after %v; want between %v and %v", d, lo, hi)
	}
	join(t, a2, "r", "alice", nil)
	if e := nextPresence(t, obs); e.Type != "join" || e.Seq != 4 {
		t.Fatalf("got %+v; want the next join at seq 4", e)
	}

	// Grace 0: removed at once, by the disconnect itself.
	opts0 := testOptions(t)
	opts0.Presence.DisconnectGrace = -1
	opts0.Presence.ReaperInterval = time.Hour
	n0 := startNode(t, opts0)
	b, obs0 := dial(t, n0), dial(t, n0)
	join(t, obs0, "r", "obs", nil)
	nextPresence(t, obs0)
	join(t, b, "r", "bob", nil)
	nextPresence(t, obs0)
	_ = b.Close()
	if e := nextPresence(t, obs0); e.Type != "leave" || e.Reason != "disconnect" {
		t.Fatalf("got %+v", e)
	}
}

// A connection whose heartbeats stop (its node crashed) is removed by the
// reaper of another node once the lookback has passed, with reason expired.
func TestExpiryOfCrashedNode(t *testing.T) { backends(t, testExpiryOfCrashedNode) }

func testExpiryOfCrashedNode(t *testing.T, opts ServerOptions) {
	opts.Presence.TTL = time.Second
	opts.Presence.ReaperLookback = time.Second
	n := startNode(t, opts)
	p := n.srv.Presence()
	obs := dial(t, n)
	join(t, obs, "r", "obs", nil)
	nextPresence(t, obs)

	// A node that crashed leaves a connection owned by a socket nobody serves.
	ghost := bareSocket(newID())
	args := p.joinArgs("r", ghost.id, newID(), "", "ghost", jsonString("ghost"), "{}", p.lookbackMs(), p.keyTTLMs(), 4096, "", "0")
	if _, err := p.do(tctx(t), joinScript, args...); err != nil {
		t.Fatal(err)
	}
	e := nextPresence(t, obs)
	if e.Type != "join" || e.UserID != "ghost" {
		t.Fatalf("got %+v", e)
	}
	start := time.Now()
	ctx := tctx(t)
	for {
		// obs heartbeats all along, so only the ghost expires.
		if _, err := obs.Heartbeat(ctx, client.HeartbeatRequest{}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-obs.Events():
			e, err := client.ParsePresenceEvent(ev)
			if err != nil || e.Type != "leave" || e.UserID != "ghost" || e.Reason != "expired" || e.Seq != 3 {
				t.Fatalf("got %+v, %v; want the ghost to expire at seq 3", e, err)
			}
			if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
				t.Fatalf("expired after %v; want about the lookback (1 s)", d)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the ghost connection did not expire")
		}
	}
}

// Heartbeats keep a connection alive past the lookback. A connection that
// went a whole lookback without an answered heartbeat (the machine stalled:
// seen under make test's load) may rightly expire: that try starts over,
// twice at most; a not_joined sooner than that fails the test.
func TestHeartbeatsKeepAlive(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Presence.TTL = 5 * time.Second
	opts.Presence.ReaperLookback = opts.Presence.TTL
	n := startNode(t, opts)
	for try := 0; ; try++ {
		room := fmt.Sprint("r", try)
		a, obs := dial(t, n), dial(t, n)
		join(t, obs, room, "obs", nil)
		join(t, a, room, "alice", nil)
		nextPresence(t, obs)
		nextPresence(t, obs)
		lastOK := map[*client.Conn]time.Time{a: time.Now(), obs: time.Now()}
		stalled := time.Duration(0)
		for end := time.Now().Add(opts.Presence.ReaperLookback + time.Second); stalled == 0 && time.Now().Before(end); {
			time.Sleep(300 * time.Millisecond) // a client's heartbeat cadence, well within the TTL
			for _, c := range []*client.Conn{a, obs} {
				_, err := c.Heartbeat(tctx(t), client.HeartbeatRequest{})
				switch gap := time.Since(lastOK[c]); {
				case err == nil:
					lastOK[c] = time.Now()
				case strings.Contains(err.Error(), "not_joined") && gap >= opts.Presence.ReaperLookback:
					stalled = gap
				default:
					t.Fatalf("heartbeat %v after the last answered one: %v", gap, err)
				}
			}
		}
		if stalled == 0 {
			noEvent(t, obs, 10*time.Millisecond)
			return
		}
		if try == 2 {
			t.Fatalf("three tries in a row went %v without an answered heartbeat", stalled)
		}
		t.Logf("try %d: no heartbeat answered for %v (the machine stalled); starting over", try, stalled)
	}
}

// Two reapers racing over the same due connections emit exactly one leave each.
func TestReapersRace(t *testing.T) { backends(t, testReapersRace) }

func testReapersRace(t *testing.T, opts ServerOptions) {
	opts.Presence.ReaperInterval = time.Hour // the test drives the reapers
	n1, n2 := startNode(t, opts), startNode(t, opts)
	p1, p2 := n1.srv.Presence(), n2.srv.Presence()
	ctx := tctx(t)

	const rooms, per = 5, 40
	var names []string
	for r := 0; r < rooms; r++ {
		names = append(names, fmt.Sprint("room", r))
	}
	msgs, markAll := listenBuckets(t, n1.srv, names)
	for r := 0; r < rooms; r++ {
		for i := 0; i < per; i++ {
			// lookback 0: due at once
			args := p1.joinArgs(fmt.Sprint("room", r), newID(), newID(), "", "u", `"u"`, "{}", 0, 60000, 4096, "", "0")
			if _, err := p1.do(ctx, joinScript, args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := p1
			if i%2 == 1 {
				p = p2
			}
			n, err := p.reapOnce(ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	// A further run finds nothing: no duplicate leave can follow.
	if n, err := p2.reapOnce(ctx); err != nil || n != 0 {
		t.Errorf("a later reaper run removed %d, %v; want 0", n, err)
	}
	// Listen until a marker published on each room's channel after every
	// reaper run: Redis delivers a channel's messages in publish order, so
	// every leave of those runs, duplicates included, arrives before it.
	markers := markAll()
	leaves := make(map[string]int) // connId -> leave events
	total := 0
	for markers > 0 {
		var data []byte
		select {
		case data = <-msgs:
		case <-time.After(10 * time.Second):
			t.Fatalf("after %d leaves: no marker", total)
		}
		var e envelope
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Kind == "marker":
			markers--
		case e.Type == "leave":
			leaves[e.Conn]++
			total++
		}
	}
	for conn, k := range leaves {
		if k != 1 {
			t.Fatalf("connection %s got %d leave events (%d for %d connections in all); want 1 each",
				conn, k, total, len(leaves))
		}
	}
	if len(leaves) != rooms*per || total != rooms*per {
		t.Fatalf("got %d leave events for %d connections; want %d, one each", total, len(leaves), rooms*per)
	}
	if sum := counts[0] + counts[1] + counts[2] + counts[3]; sum != rooms*per {
		t.Fatalf("reapers removed %v = %d; want %d in all", counts, sum, rooms*per)
	}
	if keys := keysWithPrefix(t, opts.RedisURL, opts.Presence.Prefix); len(keys) != 0 {
		t.Fatalf("keys left behind: %v", keys)
	}
}

// 200 sockets join one room at once: every seq is used once, each snapshot
// agrees with its own join event, and every socket sees every later join.
func TestConcurrentJoins(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Rates = RateLimits{Other: Rate{PerSecond: 1000, Burst: 1000}}
	// 200 joins at once on a shared 2-core machine queue for the pool: give
	// them time rather than shed them (shedding has its own test).
	opts.Presence.OpTimeout = 15 * time.Second
	nodes := []*testNode{startNode(t, opts), startNode(t, opts)}
	const total = 200
	conns := make([]*client.Conn, total)
	for i := range conns {
		conns[i] = dial(t, nodes[i%2])
	}
	acks := make([]*client.JoinAck, total)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*opts.Presence.OpTimeout)
			defer cancel()
			// A join shed as rate_limited (a pool dial that timed out on a
			// starved machine: its script never ran) is tried again, as
			// PROTOCOL.md tells clients to; a join that ran twice would show
			// as a seq out of range below.
			var ack *client.JoinAck
			var err error
			for try := 0; ; try++ {
				ack, err = conns[i].Join(ctx, client.JoinRequest{RoomID: "big", UserID: fmt.Sprint("u", i)})
				var ae *client.AckError
				if err == nil || try == 4 || !errors.As(err, &ae) || ae.Code != "rate_limited" {
					break
				}
				time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
			}
			if err != nil {
				t.Error(err)
				return
			}
			acks[i] = ack
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := make(map[int64]bool)
	for i, ack := range acks {
		s := ack.Snapshot.Seq
		if seen[s] || s < 1 || s > total {
			t.Fatalf("seq %d reused or out of range", s)
		}
		seen[s] = true
		if len(ack.Snapshot.Connections) != int(s) {
			t.Fatalf("snapshot at seq %d lists %d connections", s, len(ack.Snapshot.Connections))
		}
		// Its own join first, then exactly the joins after it.
		for want := s; want <= total; want++ {
			e := nextPresence(t, conns[i])
			if e.Seq != want || e.Type != "join" {
				t.Fatalf("socket %d: got %s seq %d; want join seq %d", i, e.Type, e.Seq, want)
			}
		}
	}
}

// Redis restarts (losing every key): handlers answer unavailable quickly,
// /healthz says 503, sockets stay connected, and afterwards joins, heartbeats
// and cross-node events work again without restarting the nodes.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	rs := ownRedis(t)
	opts := testOptions(t)
	opts.RedisURL = rs.url()
	n1, n2 := startNode(t, opts), startNode(t, opts)
	a, b := dial(t, n1), dial(t, n2)
	join(t, a, "r", "alice", nil)
	nextPresence(t, a)

	rs.kill()
	// Each answer comes within the operation timeout (a join may wait for
	// its subscription until then, when the node has not yet seen the
	// kill), plus a margin for a busy machine.
	limit := opts.Presence.withDefaults().OpTimeout + 1500*time.Millisecond
	start := time.Now()
	_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{})
	wantCode(t, err, "unavailable")
	if d := time.Since(start); d > limit {
		t.Fatalf("the heartbeat's unavailable took %v; want within the operation timeout (%v)", d, limit)
	}
	start = time.Now()
	_, err = b.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "bob"})
	wantCode(t, err, "unavailable")
	if d := time.Since(start); d > limit {
		t.Fatalf("the join's unavailable took %v; want within the operation timeout (%v)", d, limit)
	}
	if code := httpStatus(t, n1.url+"/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz: got %d; want 503", code)
	}

	if err := rs.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "healthz 200", func() bool { return httpStatus(t, n1.url+"/healthz") == http.StatusOK })
	// The data is gone: the socket counts as not joined and joins again.
	_, err = a.Heartbeat(tctx(t), client.HeartbeatRequest{})
	wantCode(t, err, "not_joined")
	// Both subscribers are back once the cross-node events flow.
	waitFor(t, 10*time.Second, "subscriptions", func() bool {
		return n1.srv.subscribed() && n2.srv.subscribed()
	})
	ack := join(t, a, "r", "alice", nil)
	if ack.Snapshot.Seq != 1 {
		t.Fatalf("got seq %d; want 1 in the new Redis", ack.Snapshot.Seq)
	}
	join(t, b, "r", "bob", nil)
	for {
		if e := nextPresence(t, a); e.UserID == "bob" {
			break
		}
	}
	select {
	case <-a.Done():
		t.Fatal("socket a was disconnected by the outage")
	default:
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A graceful shutdown gives the node's connections the full TTL: a client
// resuming on another node causes no leave/join; one that does not come back
// expires by the shutdown deadline (the TTL), not by the lookback (which
// would take twice as long): the reaper reports which deadline removed it.
func TestGracefulShutdownHandsOver(t *testing.T) { backends(t, testGracefulShutdownHandsOver) }

func testGracefulShutdownHandsOver(t *testing.T, opts ServerOptions) {
	opts.Presence.TTL = 1500 * time.Millisecond
	logs := &logLines{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n1, n2 := startNode(t, opts), startNode(t, opts)
	a, gone, obs := dial(t, n1), dial(t, n1), dial(t, n2)
	join(t, obs, "r", "obs", nil)
	nextPresence(t, obs)
	ack := join(t, a, "r", "alice", nil)
	nextPresence(t, obs)
	goneAck := join(t, gone, "r", "gone", nil)
	nextPresence(t, obs)

	stopped := make(chan struct{})
	go func() { n1.stop(); close(stopped) }()
	<-a.Done()
	a2 := dial(t, n2)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &client.Self{ConnID: ack.Self.ConnID, Epoch: 1}})
	if err != nil || res.Self.ConnID != ack.Self.ConnID {
		t.Fatalf("resume after shutdown: got %+v, %v", res, err)
	}
	<-stopped
	// The node's disconnect writes are done: gone's deadline is the shutdown
	// time plus the TTL, by the Redis clock (not its join plus the lookback).
	due, err := redis.Int64(redisDo(t, opts.RedisURL, "ZSCORE", testRoomTag(opts.Presence.Prefix, "r")+"due", goneAck.Self.ConnID), nil)
	if err != nil {
		t.Fatalf("gone's deadline: %v; want it in the room's due set", err)
	}
	now, err := redis.Int64s(redisDo(t, opts.RedisURL, "TIME"), nil)
	if err != nil || len(now) != 2 {
		t.Fatalf("TIME: %v, %v", now, err)
	}
	if left := time.Duration(due-(now[0]*1000+now[1]/1000)) * time.Millisecond; left > opts.Presence.TTL {
		t.Fatalf("gone is due in %v; want at most the TTL (%v)", left, opts.Presence.TTL)
	}
	e := nextPresence(t, obs)
	if e.Type != "leave" || e.UserID != "gone" || e.Reason != "expired" {
		t.Fatalf("got %+v; want gone to expire", e)
	}
	conn := "conn=" + goneAck.Self.ConnID
	waitFor(t, 5*time.Second, "the reaper's report", func() bool { return len(logs.find("reaped connection", conn)) > 0 })
	if got := logs.find("reaped connection", conn); len(got) != 1 || !strings.Contains(got[0], "deadline=shutdown") {
		t.Fatalf("reaper reported %q; want one removal by the shutdown deadline\n%v", got, logs)
	}
	noEvent(t, obs, 300*time.Millisecond) // alice resumed: no leave, no join
	// The other node stays healthy (a shared Redis under load may answer a
	// PING late, hence the wait).
	waitFor(t, 10*time.Second, "healthz 200 on the other node", func() bool {
		return httpStatus(t, n2.url+"/healthz") == http.StatusOK
	})
}

// A subscription that Redis drops (CLIENT KILL) is noticed and re-made by
// itself; events flow again without restarting the node.
func TestSubscriberReconnects(t *testing.T) {
	t.Parallel()
	rs := ownRedis(t)
	opts := testOptions(t)
	opts.RedisURL = rs.url()
	n := startNode(t, opts)
	a, b := dial(t, n), dial(t, n)
	join(t, a, "r", "alice", nil)
	nextPresence(t, a)
	if killed, err := redis.Int(redisDo(t, rs.url(), "CLIENT", "KILL", "TYPE", "pubsub"), nil); err != nil || killed != 1 {
		t.Fatalf("killed %d subscriptions, %v; want 1", killed, err)
	}
	waitFor(t, 10*time.Second, "the subscription to come back", func() bool {
		return channelSubscribers(t, rs.url(), n.srv, "r") == 1
	})
	join(t, b, "r", "bob", nil)
	if e := nextPresence(t, a); e.UserID != "bob" || e.Seq != 2 {
		t.Fatalf("got %+v", e)
	}
}

// After a graceful shutdown nothing the node started is left running: the
// goroutine count returns to where it was (within the test's own few).
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	opts := testOptions(t)
	n := startNode(t, opts)
	var conns []*client.Conn
	for i := 0; i < 20; i++ {
		c := dial(t, n)
		join(t, c, "r", fmt.Sprint("u", i), nil)
		conns = append(conns, c)
	}
	if _, err := conns[0].Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	n.stop()
	for _, c := range conns {
		<-c.Done()
		for range c.Events() { // the client keeps its queued events until they are read
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+5 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left (%d before):\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listenBuckets subscribes, as a node does, to the events channels of
// rooms' buckets on srv's Redis, and returns their messages. markAll
// publishes a marker (kind "marker") on each of those channels and returns
// how many it published.
func listenBuckets(t *testing.T, srv *Server, rooms []string) (msgs <-chan []byte, markAll func() int) {
	t.Helper()
	ch := make(chan []byte, 1<<16)
	p := srv.presence
	m := newSubscriptions(srv.subs.be, p.opts.Prefix, p.bucketChannel, func(b []byte) { ch <- b },
		srv.log, func(f func()) { go f() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	buckets := make(map[int]bool)
	for _, r := range rooms {
		if b := roomBucket(r); !buckets[b] {
			buckets[b] = true
			m.acquire(b)
		}
	}
	for b := range buckets {
		if err := m.wait(tctx(t), b); err != nil {
			t.Fatal(err)
		}
	}
	return ch, func() int {
		c := srv.pool.Get()
		defer c.Close()
		for b := range buckets {
			if _, err := c.Do(p.publishCommand(), p.bucketChannel(b), `{"r":"test-marker","k":"marker"}`); err != nil {
				t.Fatal(err)
			}
		}
		return len(buckets)
	}
}

// channelSubscribers returns how many subscribers the events channel of
// room's bucket has on the single Redis at url.
func channelSubscribers(t *testing.T, url string, srv *Server, room string) int {
	t.Helper()
	sub := "NUMSUB"
	if srv.presence.shardChannels.Load() {
		sub = "SHARDNUMSUB"
	}
	r, err := redis.Values(redisDo(t, url, "PUBSUB", sub, srv.presence.bucketChannel(roomBucket(room))), nil)
	if err != nil || len(r) != 2 {
		t.Fatalf("PUBSUB %s: %v, %v", sub, r, err)
	}
	n, _ := redis.Int(r[1], nil)
	return n
}
