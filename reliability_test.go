package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"rtm/client"
)

// A quiet node recovers from a Redis restart at once, whatever its pool
// held: after a burst left dozens of idle pooled connections (all dead once
// Redis restarts) and with next to no traffic, the first /healthz, the first
// heartbeat, the first joins, the reaper and cross-node events all work as
// soon as the node's subscription is back, which is within a second of Redis
// accepting connections again.
func TestQuietNodeRecoversFromRedisRestart(t *testing.T) {
	// Not parallel: its bounds are times.
	rs := ownRedis(t)
	opts := testOptions(t)
	opts.RedisURL = rs.url()
	n1, n2 := startNode(t, opts), startNode(t, opts)
	fillPool(t, n1.srv.pool, 40)
	fillPool(t, n2.srv.pool, 40)
	a, b := dial(t, n1), dial(t, n2)
	join(t, a, "r", "alice", nil)
	nextPresence(t, a)

	rs.kill()
	waitFor(t, 10*time.Second, "both nodes to notice", func() bool { return !n1.srv.subscribed() && !n2.srv.subscribed() })
	if err := rs.start(); err != nil {
		t.Fatal(err)
	}
	// The bound: back within 1 s of Redis accepting connections.
	waitFor(t, time.Second, "both subscriptions back", func() bool { return n1.srv.subscribed() && n2.srv.subscribed() })

	// Each of these is tried once: none may take a dead pooled connection.
	for _, n := range []*testNode{n1, n2} {
		if code := httpStatus(t, n.url+"/healthz"); code != http.StatusOK {
			t.Fatalf("first healthz after the restart: got %d; want 200", code)
		}
	}
	_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{})
	wantCode(t, err, "not_joined") // the data is gone, and Redis says so
	if ack := join(t, a, "r", "alice", nil); ack.Snapshot.Seq != 1 {
		t.Fatalf("got seq %d; want 1 in the new Redis", ack.Snapshot.Seq)
	}
	nextPresence(t, a)
	join(t, b, "r", "bob", nil)
	if e := nextPresence(t, a); e.Type != "join" || e.UserID != "bob" || e.Seq != 2 {
		t.Fatalf("cross-node: got %+v; want bob's join, seq 2", e)
	}
	if _, err := b.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
		t.Fatalf("heartbeat on the other node: %v", err)
	}
	// The reaper: bob's socket drops, his connection leaves after the grace.
	_ = b.Drop()
	e := nextPresence(t, a)
	if e.Type != "leave" || e.UserID != "bob" || e.Reason != "disconnect" {
		t.Fatalf("got %+v; want bob's leave by the reaper", e)
	}
}

// fillPool leaves n idle connections in pool, as a burst of traffic does.
func fillPool(t *testing.T, pool *redis.Pool, n int) {
	t.Helper()
	conns := make([]redis.Conn, n)
	for i := range conns {
		conns[i] = pool.Get()
		if _, err := conns[i].Do("PING"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if got := pool.Stats().IdleCount; got < n {
		t.Fatalf("pool holds %d idle connections; want %d", got, n)
	}
}

// While Redis refuses connections for long enough that a backoff would grow,
// the subscriber keeps trying often: once Redis is back it re-subscribes
// within about 100 ms.
func TestSubscriberBackSoonAfterRedis(t *testing.T) {
	// Not parallel: its bounds are times.
	rs := ownRedis(t)
	opts := testOptions(t)
	opts.RedisURL = rs.url()
	n := startNode(t, opts)

	rs.kill()
	// Redis's port now accepts and closes at once, counting the
	// subscriber's attempts (its first command is a PING; the pool's
	// connections start with their script).
	attempts := refuseRedis(t, rs.port)
	const enough = 8 // a doubling backoff from 100 ms would be at 1 s by now
	waitFor(t, 30*time.Second, "the subscriber to retry", func() bool { return attempts.count() >= enough })
	attempts.close()
	if err := rs.start(); err != nil {
		t.Fatal(err)
	}
	// The issue asks for ~100 ms; the margin is for a loaded machine.
	const within = 500 * time.Millisecond
	start := time.Now()
	waitFor(t, 10*time.Second, "the subscription", func() bool { return n.srv.subscribed() })
	if d := time.Since(start); d > within {
		t.Fatalf("re-subscribed %v after Redis came back; want within %v", d, within)
	}
}

// subAttempts is a listener on a Redis port that accepts every connection,
// reads its first command and closes it, counting those that are a PING.
type subAttempts struct {
	ln net.Listener
	wg sync.WaitGroup

	mu sync.Mutex // guards n
	n  int
}

func refuseRedis(t *testing.T, port int) *subAttempts {
	t.Helper()
	var ln net.Listener
	waitFor(t, 10*time.Second, "Redis's port to be free", func() bool {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		return err == nil
	})
	a := &subAttempts{ln: ln}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 256)
			if k, _ := io.ReadAtLeast(c, buf, 1); string(buf[:k]) == "*1\r\n$4\r\nPING\r\n" {
				a.mu.Lock()
				a.n++
				a.mu.Unlock()
			}
			c.Close()
		}
	}()
	t.Cleanup(a.close)
	return a
}

func (a *subAttempts) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func (a *subAttempts) close() {
	a.ln.Close()
	a.wg.Wait()
}

// Events published while a node's subscription is down reach none of its
// sockets; once it is back, every joined socket of a room whose seq moved
// meanwhile gets presence:resync {roomId, seq}, and the others nothing.
func TestResyncAfterSubscriptionGap(t *testing.T) {
	t.Parallel()
	rs := ownRedis(t)
	opts := testOptions(t)
	opts.RedisURL = rs.url()
	n := startNode(t, opts)
	a, b := dial(t, n), dial(t, n)
	join(t, a, "r", "alice", nil)
	nextPresence(t, a)
	join(t, b, "quiet", "bob", nil)
	nextPresence(t, b)

	// The room moves in the same transaction that kills the subscription:
	// the node cannot have seen it.
	c, err := redis.DialURL(rs.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seqKey := testRoomTag(opts.Presence.Prefix, "r") + "seq"
	c.Send("MULTI")
	c.Send("CLIENT", "KILL", "TYPE", "pubsub")
	c.Send("INCR", seqKey)
	r, err := redis.Values(c.Do("EXEC"))
	if err != nil || len(r) != 2 || r[0] != int64(1) || r[1] != int64(2) {
		t.Fatalf("MULTI CLIENT KILL, INCR: got %v, %v; want [1 2]", r, err)
	}

	e := nextEvent(t, a, 10*time.Second)
	if e.Name != "presence:resync" {
		t.Fatalf("got %s %s; want presence:resync", e.Name, e.Args)
	}
	var rsy struct {
		RoomID string `json:"roomId"`
		Seq    int64  `json:"seq"`
	}
	if err := json.Unmarshal(e.Args[0], &rsy); err != nil || rsy.RoomID != "r" || rsy.Seq != 2 {
		t.Fatalf("got %s, %v; want {roomId: r, seq: 2}", e.Args[0], err)
	}
	// The client answers with presence:sync and is up to date.
	snap, err := a.Sync(tctx(t))
	if err != nil || snap.Seq != 2 {
		t.Fatalf("sync: got %+v, %v; want seq 2", snap, err)
	}
	noEvent(t, b, 200*time.Millisecond) // its room did not move
}

// When Redis loses a room (its seq starts over at 1), a socket whose
// connection went with it stops receiving the room as soon as the node sees
// the seq go backwards, and counts as not joined, before it sends anything.
func TestRestartedRoomStopsStaleSockets(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	n := startNode(t, opts)
	a, b, c := dial(t, n), dial(t, n), dial(t, n)
	join(t, a, "r", "alice", nil)
	nextPresence(t, a)
	join(t, b, "r", "bob", nil)
	if e := nextPresence(t, a); e.Seq != 2 {
		t.Fatalf("got seq %d; want 2", e.Seq)
	}
	nextPresence(t, b)
	for _, k := range keysWithPrefix(t, sharedRedisURL, opts.Presence.Prefix) { // Redis loses everything
		redisDo(t, sharedRedisURL, "DEL", k)
	}

	join(t, c, "r", "carol", nil) // seq 1 again
	if e := nextPresence(t, c); e.Seq != 1 || e.UserID != "carol" {
		t.Fatalf("got %+v; want carol's join, seq 1", e)
	}
	sa, sb := n.srv.socket(a.ID()), n.srv.socket(b.ID())
	waitFor(t, 5*time.Second, "a and b out of the room", func() bool {
		ra, _, _ := n.srv.presence.conn(sa).get()
		rb, _, _ := n.srv.presence.conn(sb).get()
		return ra == "" && rb == "" && hubMembers(n.srv.hub, "r") == 1
	})
	if _, err := c.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"k": 1}}); err != nil {
		t.Fatal(err)
	}
	if e := nextPresence(t, c); e.Type != "update" || e.Seq != 2 {
		t.Fatalf("got %+v; want carol's update, seq 2", e)
	}
	noEvent(t, a, 100*time.Millisecond) // neither carol's join nor her update
	noEvent(t, b, 10*time.Millisecond)
	_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{})
	wantCode(t, err, "not_joined")
}

// A socket that is not joined and sends a heartbeat whose patchState alone
// exceeds the state limit is answered payload_too_large: it outranks
// not_joined (PROTOCOL.md's order).
func TestOversizedPatchOutranksNotJoined(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	c := dial(t, n)
	big := map[string]any{"k": strings.Repeat("x", 4096)}
	_, err := c.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: big})
	wantCode(t, err, "payload_too_large")
	// Deleting keys (null values) weighs nothing.
	_, err = c.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{strings.Repeat("k", 4096): nil}})
	wantCode(t, err, "not_joined")
}

// A node whose every pooled connection is busy, with Redis answering, sheds
// with rate_limited when an operation's deadline runs out waiting: it is
// overloaded, not cut off from Redis. When Redis is really gone the answer
// is unavailable.
func TestStarvedPoolShedsRateLimited(t *testing.T) {
	// Not parallel: its bounds are times.
	rs := ownRedis(t)
	opts := testOptions(t)
	opts.RedisURL = rs.url()
	opts.Presence.OpTimeout = 200 * time.Millisecond
	n := startNode(t, opts)
	a, b := dial(t, n), dial(t, n)
	join(t, a, "r", "alice", nil)

	// Each call waits for a connection while all are taken, its deadline
	// runs out, and Redis answered the call made just before. When the
	// machine stalled so long that the answer before is older than
	// redisAliveWindow by the time the call fails, unavailable is the right
	// answer: that try is made again, twice at most.
	starved := func(what string, call func() error) {
		t.Helper()
		for try := 0; ; try++ {
			if _, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
				t.Fatalf("heartbeat with a free pool: %v", err)
			}
			answered := time.Now()
			held := make([]redis.Conn, n.srv.pool.MaxActive)
			for i := range held {
				held[i] = n.srv.pool.Get()
			}
			err := call()
			took := time.Since(answered)
			for _, c := range held {
				c.Close()
			}
			var ae *client.AckError
			if errors.As(err, &ae) && ae.Code == "unavailable" && took > redisAliveWindow && try < 2 {
				t.Logf("%s: the call failed %v after Redis's last answer (a stalled machine); again", what, took)
				continue
			}
			wantCode(t, err, "rate_limited")
			return
		}
	}
	starved("heartbeat", func() error {
		_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{})
		return err
	})
	starved("patch", func() error {
		_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"k": 1}})
		return err
	})
	starved("join", func() error {
		_, err := b.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "bob"})
		return err
	})
	if _, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
		t.Fatalf("heartbeat once the pool is free: %v", err)
	}

	rs.kill()
	waitFor(t, 10*time.Second, "a Redis outage to be reported", func() bool {
		_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{})
		var ae *client.AckError
		if !errors.As(err, &ae) {
			return false
		}
		if ae.Code == "rate_limited" {
			t.Fatalf("Redis is down: got rate_limited; want unavailable")
		}
		return ae.Code == "unavailable"
	})
}

// A quiet node answers a plain heartbeat in one Redis round trip, without
// waiting for others to share it (the old fixed linger was 2 ms, so no
// heartbeat took less); heartbeats arriving while a batch is in flight all
// gather into the next one. Not parallel: it times round trips.
func TestHeartbeatsBatchNaturally(t *testing.T) {
	rs := ownRedis(t)
	opts := testOptions(t)
	opts.RedisURL = rs.url()
	n := startNode(t, opts)
	p := n.srv.presence
	c := dial(t, n)
	join(t, c, "r", "alice", nil)
	sock := n.srv.socket(c.ID())
	room, _, connID := n.srv.presence.conn(sock).get()
	ctx := tctx(t)

	const oldLinger = 2 * time.Millisecond
	fastest := time.Hour
	for i := 0; i < 50; i++ {
		start := time.Now()
		if code, _, err := p.beat(ctx, sock, room, connID, -1); err != nil || code != 0 {
			t.Fatalf("beat: %d, %v", code, err)
		}
		fastest = min(fastest, time.Since(start))
	}
	if fastest >= oldLinger {
		t.Errorf("the fastest of 50 lone heartbeats took %v; want one round trip, under %v", fastest, oldLinger)
	}

	// Redis holds the first batch while the others arrive.
	before := metricValue(t, n, "rtm_heartbeat_batch_size_count")
	admin, err := redis.DialURL(rs.url())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Do("CLIENT", "PAUSE", 10000, "WRITE"); err != nil {
		t.Fatal(err)
	}
	unpaused := false
	unpause := func() {
		if !unpaused {
			unpaused = true
			if _, err := admin.Do("CLIENT", "UNPAUSE"); err != nil {
				t.Error(err)
			}
		}
	}
	defer unpause()
	const waiting = 200 // under maxBeatBatch
	beats := make([]*beat, 1+waiting)
	for i := range beats {
		beats[i] = &beat{room: room, connID: connID, sid: sock.id, epoch: -1, done: make(chan beatResult, 1)}
		p.beats <- beats[i]
		if i == 0 { // the first leaves alone: the batcher has taken it
			waitFor(t, 5*time.Second, "the first batch to leave", func() bool { return len(p.beats) == 0 })
		}
	}
	waitFor(t, 5*time.Second, "the batcher to gather the rest", func() bool { return len(p.beats) == 0 })
	unpause()
	for _, b := range beats {
		if r := <-b.done; r.err != nil || r.code != 0 {
			t.Fatalf("beat: code %d, %v", r.code, r.err)
		}
	}
	if batches := metricValue(t, n, "rtm_heartbeat_batch_size_count") - before; batches != 2 {
		t.Errorf("%d heartbeats, %d arriving while the first was in flight, took %v round trips; want 2",
			len(beats), waiting, batches)
	}
}

// metricValue scrapes one unlabelled series from the node's /metrics.
func metricValue(t *testing.T, n *testNode, name string) float64 {
	t.Helper()
	resp, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// logLines records the messages a node logs, for tests that check what it
// reported (which deadline removed a connection, say).
type logLines struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.lines = append(l.lines, line)
	}
	return len(p), nil
}

// find returns the lines containing every one of parts.
func (l *logLines) find(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// String is for failure messages.
func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(len(l.lines), " lines:\n", strings.Join(l.lines, "\n"))
}

// hubMembers counts the sockets the hub delivers room to.
func hubMembers(h *hub, room string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms[room])
}

// -h shows each flag's real type: -pprof is a boolean flag, durations are
// durations, numbers are numbers.
func TestConfigHelpShowsTypes(t *testing.T) {
	var out strings.Builder
	if _, err := loadConfig([]string{"-h"}, env(), &out); err == nil {
		t.Fatal("-h: got no error; want flag.ErrHelp")
	}
	for _, want := range []string{"  -pprof\n", "  -port int\n", "  -presence-ttl-ms duration\n",
		"  -shutdown-timeout-ms duration\n", "  -rate-chat rate\n", "  -log-level level\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	c, err := loadConfig([]string{"-pprof", "-presence-ttl-ms", "1.5s", "-presence-reaper-interval-ms", "250"}, env(), io.Discard)
	if err != nil || !c.PProf || c.Server.Presence.TTL != 1500*time.Millisecond ||
		c.Server.Presence.ReaperInterval != 250*time.Millisecond {
		t.Fatalf("got %+v, %v; want pprof on, a TTL of 1.5 s and a reaper interval of 250 ms", c, err)
	}
}

// Events still in flight when their socket goes are handled against that
// socket and answer nothing: none is counted or answered as internal.
func TestEventsOfAGoneSocketAreNotInternal(t *testing.T) {
	t.Parallel()
	pr := &goneProbe{}
	n := startNode(t, testOptions(t), pr)
	for i := 0; i < 40; i++ {
		r := dialRaw(t, n, versions[i%2], "", "")
		r.send(fmt.Sprintf(`420["presence:join",{"roomId":"gone-%d","userId":"u"}]`, i))
		for k := 1; k <= 10; k++ {
			r.send(fmt.Sprintf(`42%d["presence:sync"]`, k))
			r.send(fmt.Sprintf(`42%d["probe"]`, 100+k))
		}
		_ = r.c.Close() // before any answer
	}
	waitFor(t, 10*time.Second, "every socket gone", func() bool { return n.srv.eng.Len() == 0 })
	// Every event was handled (none dropped unseen, which would make the
	// count of internal answers 0 for nothing), and none answered internal.
	handled := map[string]float64{}
	ch := make(chan prometheus.Metric, 64)
	go func() { n.srv.metrics.acks.Collect(ch); close(ch) }()
	for pm := range ch {
		var m dto.Metric
		if err := pm.Write(&m); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["code"] == "internal" && m.GetCounter().GetValue() > 0 {
			t.Fatalf("%s: %v internal answers for events of gone sockets", labels["event"], m.GetCounter().GetValue())
		}
		handled[labels["event"]] += m.GetCounter().GetValue()
	}
	if handled["presence:join"] != 40 || handled["presence:sync"] == 0 {
		t.Fatalf("handled %v joins and %v syncs; want all 40 joins and some syncs", handled["presence:join"], handled["presence:sync"])
	}
	if pr.gone.Load() == 0 {
		t.Fatalf("of %d probes handled, none after its socket was gone; want some", pr.calls.Load())
	}
	t.Logf("%d of %d probes handled after their socket was gone", pr.gone.Load(), pr.calls.Load())
}

// goneProbe counts the calls of its "probe" event, and those made when the
// socket was already gone (Send refuses).
type goneProbe struct{ calls, gone atomic.Int64 }

func (*goneProbe) Name() string { return "probe" }

func (g *goneProbe) Register(mc *ModuleContext) error {
	mc.Handle("probe", func(_ context.Context, s *Socket, _ json.RawMessage) (any, error) {
		g.calls.Add(1)
		if !s.Send("probe", json.RawMessage(`{}`)) {
			g.gone.Add(1)
		}
		return nil, nil
	})
	return nil
}

// A node whose sockets hold more than its bound in their outbound queues
// sheds patches with rate_limited (not internal, no strike, nobody
// dropped), and takes them again once the queues drain.
func TestBackloggedNodeShedsPatches(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.shedBytes = 64 << 10
	opts.Presence.TTL = time.Minute // no heartbeats needed meanwhile
	opts.Rates.Patch = Rate{PerSecond: 1e6, Burst: 1e6}
	n := startNode(t, opts)
	block := make(chan struct{})
	var unblock sync.Once
	defer unblock.Do(func() { close(block) })
	var stall atomic.Bool
	stalled, err := client.Dial(tctx(t), n.url, client.Options{OnEvent: func(e client.Event) {
		if stall.Load() {
			<-block // stop reading
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := dial(t, n)
	join(t, stalled, "r", "stalled", nil)
	join(t, a, "r", "alice", nil)
	stall.Store(true)
	big := strings.Repeat("x", 3000)
	shed := 0
	for i := 0; i < 2000 && shed == 0; i++ {
		_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"v": fmt.Sprint(i, big)}})
		var ae *client.AckError
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.Code == "rate_limited" && strings.Contains(ae.Message, "busy"):
			shed = i
		default:
			t.Fatalf("patch %d: %v; want ok or rate_limited (busy)", i, err)
		}
	}
	if shed == 0 {
		t.Fatalf("2000 patches to a room with a stalled reader: none shed (queued %d bytes)", n.srv.eng.queued.Load())
	}
	if q := n.srv.eng.queued.Load(); q <= opts.shedBytes {
		t.Fatalf("shed with %d bytes queued; want over %d", q, opts.shedBytes)
	}
	// Plain heartbeats still go through.
	if _, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
		t.Fatalf("heartbeat while backlogged: %v", err)
	}
	unblock.Do(func() { close(block) })
	waitFor(t, 10*time.Second, "a patch taken again", func() bool {
		_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"v": "again"}})
		return err == nil
	})
	if stalled.Err() != nil || a.Err() != nil {
		t.Fatalf("a client was dropped: %v, %v", stalled.Err(), a.Err())
	}
	t.Logf("shed from patch %d on", shed)
}
