package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"

	"rtm/client"
)

func TestSplitRedisURL(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		in   string
		want []string
	}{
		"one":         {"redis://h:1", []string{"redis://h:1"}},
		"two":         {"redis://h1:7000,h2:7001", []string{"redis://h1:7000", "redis://h2:7001"}},
		"credentials": {"rediss://u:p@h1:1,h2:2/0?x=1", []string{"rediss://u:p@h1:1/0?x=1", "rediss://u:p@h2:2/0?x=1"}},
		"spaces":      {"redis://h1:1, h2:2,", []string{"redis://h1:1", "redis://h2:2"}},
	} {
		got, err := splitRedisURL(tt.in)
		if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, tt.want)
		}
	}
}

// keySlot agrees with the server's CLUSTER KEYSLOT, hash tags included.
func TestClusterKeySlot(t *testing.T) {
	rc := testCluster(t)
	keys := []string{"", "foo", "123456789", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap",
		"foo{bar}{zap}", "{}", "prs:{room-1}:seq", "é{ü}"}
	for i := range 200 {
		keys = append(keys, "k"+strconv.Itoa(i))
	}
	for _, k := range keys {
		want, err := redis.Int(rc.do(0, "CLUSTER", "KEYSLOT", k))
		if err != nil {
			t.Fatal(err)
		}
		if got := keySlot(k); got != want {
			t.Errorf("keySlot(%q) = %d; want %d", k, got, want)
		}
	}
}

// The first dial tells a cluster from a single Redis and from miniredis.
func TestRedisDialerDetectsCluster(t *testing.T) {
	rc := testCluster(t)
	mr := miniredis.RunT(t)
	for name, tt := range map[string]struct {
		url     string
		cluster bool
	}{
		"single":    {sharedRedisURL, false},
		"miniredis": {"redis://" + mr.Addr(), false},
		"one node":  {rc.url(1), true},
		"two nodes": {"redis://" + rc.addr(2) + "," + rc.addr(0), true},
		"dead seed": {"redis://127.0.0.1:1," + rc.addr(3), true},
	} {
		c, err := redisDialer(tt.url, nil)(context.Background())
		if err != nil {
			t.Fatalf("%s: dial: %v", name, err)
		}
		_, isCluster := c.(*clusterConn)
		if _, err := c.Do("SET", "detect-"+name, "1"); err != nil || isCluster != tt.cluster {
			t.Errorf("%s: cluster %v, SET %v; want cluster %v", name, isCluster, err, tt.cluster)
		}
		c.Close()
	}
	if _, err := redisDialer("redis://"+mr.Addr()+","+rc.addr(0), nil)(context.Background()); err == nil {
		t.Error("a single Redis listed with another node: got no error")
	}
}

// clusterPool returns a pool on rc as the server builds it, and the cluster
// behind it, with its slot map loaded.
func clusterPool(t *testing.T, url string) (*redis.Pool, *cluster) {
	t.Helper()
	p := newPool(redisDialer(url, nil))
	t.Cleanup(func() { p.Close() })
	c, err := p.DialContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*trackedConn).Conn.(*clusterConn)
	if !ok {
		t.Fatalf("%s: not detected as a cluster", url)
	}
	if err := cc.cl.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p, cc.cl
}

// Keys land on every master, each on the master of its slot; scripts,
// pipelines and pub/sub work through the routed connection.
func TestClusterRoutesKeysToEveryMaster(t *testing.T) {
	rc := testCluster(t)
	p, cl := clusterPool(t, rc.url(0))
	prefix := fmt.Sprintf("route%d:", time.Now().UnixNano())
	c := p.Get()
	defer c.Close()
	const n = 60
	for i := range n {
		if _, err := c.Do("SET", prefix+strconv.Itoa(i), i); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
	perNode := map[int]int{}
	for i := range n {
		k := prefix + strconv.Itoa(i)
		node := rc.node(cl.master(keySlot(k)))
		if got, err := redis.Int(rc.do(node, "GET", k)); err != nil || got != i {
			t.Fatalf("GET %s on its master %d: got %d, %v; want %d", k, node, got, err, i)
		}
		perNode[node]++
	}
	if len(perNode) != 3 {
		t.Fatalf("keys per master %v; want keys on 3 masters", perNode)
	}

	incr := redis.NewScript(1, `return redis.call('INCRBY', KEYS[1], ARGV[1])`)
	for i := range n {
		if got, err := redis.Int(incr.Do(c, prefix+strconv.Itoa(i), 100)); err != nil || got != i+100 {
			t.Fatalf("script on key %d: got %d, %v; want %d", i, got, err, i+100)
		}
	}
	for i := range n {
		_ = c.Send("GET", prefix+strconv.Itoa(i))
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got, err := redis.Int(c.Receive()); err != nil || got != i+100 {
			t.Fatalf("pipelined GET %d: got %d, %v; want %d", i, got, err, i+100)
		}
	}

	sub, err := p.DialContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	psc := redis.PubSubConn{Conn: sub}
	defer psc.Close()
	if err := psc.Subscribe(prefix + "ch"); err != nil {
		t.Fatal(err)
	}
	if v, ok := psc.Receive().(redis.Subscription); !ok || v.Count != 1 {
		t.Fatalf("got %v; want the subscription", v)
	}
	if _, err := c.Do("PUBLISH", prefix+"ch", "hello"); err != nil {
		t.Fatal(err)
	}
	if m, ok := psc.Receive().(redis.Message); !ok || string(m.Data) != "hello" {
		t.Fatalf("got %v; want the message", m)
	}
}

// A slot in migration is followed with ASK (the map unchanged), and once
// moved with MOVED (the map updated).
func TestClusterFollowsAskAndMoved(t *testing.T) {
	rc := testCluster(t)
	p, cl := clusterPool(t, rc.url(0))
	cl.every = time.Hour // only MOVED refreshes the map here
	tag := fmt.Sprintf("{mig%d}", time.Now().UnixNano())
	ka, kb := tag+"a", tag+"b"
	c := p.Get()
	defer c.Close()
	if _, err := c.Do("SET", ka, "A"); err != nil {
		t.Fatal(err)
	}
	slot := keySlot(ka)
	from := rc.node(cl.master(slot))
	to := rc.node(cl.master((slot + clusterSlots/2) % clusterSlots))
	if from == to {
		t.Fatalf("slots %d and %d on one master", slot, (slot+clusterSlots/2)%clusterSlots)
	}
	fromID, _ := redis.String(rc.do(from, "CLUSTER", "MYID"))
	toID, _ := redis.String(rc.do(to, "CLUSTER", "MYID"))
	mustDo(t, rc, to, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID)
	mustDo(t, rc, from, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID)

	if _, err := c.Do("SET", kb, "B"); err != nil { // not on from: ASK
		t.Fatalf("SET during migration: %v", err)
	}
	if got, err := redis.String(c.Do("GET", ka)); err != nil || got != "A" { // still on from
		t.Fatalf("GET %s: got %q, %v; want A", ka, got, err)
	}
	// One key here, one there: TRYAGAIN until the migration ends.
	if _, err := c.Do("MGET", ka, kb); protocolError(err) != errUnavailable || cl.retried.Load() == 0 {
		t.Errorf("MGET across a migrating slot: %v after %d retries; want unavailable after retries", err, cl.retried.Load())
	}
	_, port, _ := strings.Cut(rc.addr(to), ":")
	mustDo(t, rc, from, "MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", ka)
	if got, err := redis.String(c.Do("GET", ka)); err != nil || got != "A" { // moved: ASK
		t.Fatalf("GET %s after MIGRATE: got %q, %v; want A", ka, got, err)
	}
	if n := cl.asked.Load(); n != 2 {
		t.Errorf("ASK followed %d times; want 2", n)
	}
	if got := cl.master(slot); got != rc.addr(from) {
		t.Errorf("map after ASK: slot %d on %s; want %s unchanged", slot, got, rc.addr(from))
	}

	for _, i := range append([]int{to, from}, rc.masters()...) {
		mustDo(t, rc, i, "CLUSTER", "SETSLOT", slot, "NODE", toID)
	}
	// Pipelined with a key of another master: the MOVED one is run again.
	other := ""
	for i := 0; other == "" || rc.node(cl.master(keySlot(other))) != from; i++ {
		other = fmt.Sprintf("{other%d}", i)
	}
	_ = c.Send("GET", kb)
	_ = c.Send("SET", other, "O")
	_ = c.Send("GET", ka)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"B", "OK", "A"} {
		if got, err := redis.String(c.Receive()); err != nil || got != want {
			t.Fatalf("pipelined after the move: got %q, %v; want %s", got, err, want)
		}
	}
	if n := cl.moved.Load(); n != 1 {
		t.Errorf("MOVED followed %d times; want 1", n)
	}
	if got := cl.master(slot); got != rc.addr(to) {
		t.Errorf("map after MOVED: slot %d on %s; want %s", slot, got, rc.addr(to))
	}
}

func mustDo(t *testing.T, rc *redisCluster, node int, cmd string, args ...any) {
	t.Helper()
	if _, err := rc.do(node, cmd, args...); err != nil {
		t.Fatalf("node %d: %s %v: %v", node, cmd, args, err)
	}
}

// A master killed with kill -9: calls on its slots fail as unavailable until
// its replica is promoted, and work again soon after.
func TestClusterMasterKilled(t *testing.T) {
	rc := ownCluster(t)
	p, cl := clusterPool(t, rc.url(0))
	cl.every = time.Hour // only the failures refresh the map
	const key = "{victim}k"
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := p.GetContext(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = redis.DoContext(c, ctx, "INCR", key)
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	victim := rc.node(cl.master(keySlot(key)))
	replica := rc.replicaOf(t, victim)

	rc.nodes[victim].kill()
	start := time.Now()
	err := call()
	if err == nil || protocolError(err) != errUnavailable {
		t.Fatalf("call right after kill -9: %v (%v); want unavailable", err, protocolError(err))
	}
	var promoted time.Time
	waitFor(t, 20*clusterNodeTimeout, "the replica's promotion", func() bool {
		if err := call(); err != nil && protocolError(err) != errUnavailable {
			t.Fatalf("call during failover: %v; want unavailable", err)
		}
		role, _ := redis.Values(rc.do(replica, "ROLE"))
		kind, _ := redis.String(role[0], nil)
		if kind == "master" && promoted.IsZero() {
			promoted = time.Now()
		}
		return !promoted.IsZero()
	})
	t.Logf("promoted %v after the kill", promoted.Sub(start))
	waitFor(t, 10*time.Second, "calls to work after the promotion", func() bool {
		err := call()
		if err != nil && protocolError(err) != errUnavailable {
			t.Fatalf("call after the promotion: %v; want unavailable or success", err)
		}
		return err == nil
	})
	t.Logf("recovered %v after the promotion", time.Since(promoted))
	if got := cl.master(keySlot(key)); got != rc.addr(replica) {
		t.Errorf("slot of %s on %s; want the promoted %s", key, got, rc.addr(replica))
	}
}

// The master of a live room's bucket is killed (kill -9) while its members
// heartbeat on two nodes: acks are unavailable meanwhile, every member
// works again within 10 s of the replica's promotion, and nobody was lost
// or left twice.
func TestClusterServerSurvivesFailover(t *testing.T) {
	rc := ownCluster(t)
	opts := testOptions(t)
	opts.RedisURL = rc.url(0)
	opts.Presence.TTL = 15 * time.Second // longer than the outage: nobody expires
	opts.Rates.Heartbeat = Rate{PerSecond: 1000, Burst: 1000}
	n1, n2 := startNode(t, opts), startNode(t, opts)
	obs, a, b := dial(t, n2), dial(t, n1), dial(t, n2)
	const room = "failover"
	join(t, obs, room, "obs", nil)
	ackA := join(t, a, room, "alice", nil)
	join(t, b, room, "bob", nil)
	for range 3 {
		nextPresence(t, obs)
	}

	_, cl := clusterPool(t, rc.url(0))
	victim := rc.node(cl.master(keySlot(testRoomTag(opts.Presence.Prefix, room))))
	replica := rc.replicaOf(t, victim)
	// A room on a surviving master: CLUSTERDOWN while the cluster lacks the
	// victim's slots.
	elsewhere := ""
	for i := 0; elsewhere == "" || rc.node(cl.master(keySlot(testRoomTag(opts.Presence.Prefix, elsewhere)))) == victim; i++ {
		elsewhere = fmt.Sprint("elsewhere", i)
	}
	c := dial(t, n1)
	join(t, c, elsewhere, "carol", nil)
	rc.replicated(t, victim, testRoomTag(opts.Presence.Prefix, room)+"mark") // the joins are on the replica
	rc.nodes[victim].kill()

	beat := func(c *client.Conn) error {
		_, err := c.Heartbeat(tctx(t), client.HeartbeatRequest{})
		var ae *client.AckError
		if err != nil && (!errors.As(err, &ae) || ae.Code != "unavailable") {
			t.Fatalf("heartbeat during failover: %v; want ok or unavailable", err)
		}
		return err
	}
	if err := beat(a); err == nil {
		t.Fatal("heartbeat right after kill -9: ok; want unavailable")
	}
	var promoted time.Time
	waitFor(t, 20*clusterNodeTimeout, "the replica's promotion", func() bool {
		for _, c := range []*client.Conn{obs, a, b, c} {
			_ = beat(c)
		}
		if role, _ := redis.Values(rc.do(replica, "ROLE")); len(role) > 0 {
			if kind, _ := redis.String(role[0], nil); kind == "master" {
				promoted = time.Now()
			}
		}
		return !promoted.IsZero()
	})
	waitFor(t, 10*time.Second, "every member to heartbeat again, both nodes subscribed", func() bool {
		return beat(obs) == nil && beat(a) == nil && beat(b) == nil && beat(c) == nil &&
			n1.srv.subscribed() && n2.srv.subscribed()
	})
	t.Logf("recovered %v after the promotion", time.Since(promoted))

	snap, err := obs.Sync(tctx(t))
	if err != nil || len(snap.Connections) != 3 {
		t.Fatalf("after the failover: %+v, %v; want obs, alice and bob", snap, err)
	}
	if _, err := a.Leave(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if e := nextPresence(t, obs); e.Type != "leave" || e.ConnID != ackA.Self.ConnID {
		t.Fatalf("got %+v; want alice's leave", e)
	}
	noPresence(t, obs, 2*opts.Presence.ReaperInterval+clusterNodeTimeout) // no second leave, no ghost's
}

// noPresence fails on any presence event c receives within d (other
// events, presence:resync among them, are skipped), or if c is closed.
func noPresence(t *testing.T, c *client.Conn, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed while checking that no presence event comes: %v", c.Err())
			}
			if e.Name == "presence:event" {
				t.Fatalf("unexpected presence event %s", e.Args)
			}
		case <-deadline:
			return
		}
	}
}

// The slot of a live room moves to another master (keys migrated one at a
// time with MIGRATE, as redis-cli --cluster reshard does in batches, then
// the slot reassigned) while its members patch and sync: every event
// arrives, in order, or a presence:resync covers the moment the node could
// not hear the slot; every snapshot taken meanwhile is whole; and the view
// after the move is current.
func TestClusterServerSurvivesReshard(t *testing.T) {
	rc := ownCluster(t)
	opts := testOptions(t)
	opts.RedisURL = rc.url(0)
	opts.Rates.Heartbeat = Rate{PerSecond: 1000, Burst: 1000}
	opts.Rates.Patch = Rate{PerSecond: 1000, Burst: 1000}
	n1, n2 := startNode(t, opts), startNode(t, opts)
	obs, a, b := dial(t, n2), dial(t, n1), dial(t, n1)
	const room = "reshard"
	join(t, obs, room, "obs", nil)
	join(t, a, room, "alice", map[string]any{"v": 0})
	bobConn := join(t, b, room, "bob", map[string]any{"b": 1}).Self.ConnID
	for range 3 {
		nextPresence(t, obs)
	}

	_, cl := clusterPool(t, rc.url(0))
	slot := keySlot(testRoomTag(opts.Presence.Prefix, room))
	from := rc.node(cl.master(slot))
	to := rc.node(cl.master((slot + clusterSlots/2) % clusterSlots))
	fromID, _ := redis.String(rc.do(from, "CLUSTER", "MYID"))
	toID, _ := redis.String(rc.do(to, "CLUSTER", "MYID"))

	// alice patches from before the move until 10 patches after it.
	moved := make(chan struct{})
	done := make(chan error, 1)
	patches, retries := 0, 0
	go func() {
		after := 0
		for i := 1; after < 10; i++ {
			select {
			case <-moved:
				after++
			default:
			}
			_, err := a.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"v": i}})
			var ae *client.AckError
			for errors.As(err, &ae) && ae.Code == "unavailable" { // retried, as a client does
				retries++
				_, err = a.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"v": i}})
			}
			if err != nil {
				done <- fmt.Errorf("patch %d: %w", i, err)
				return
			}
			patches = i
		}
		done <- nil
	}()
	// bob syncs until the move is over: each snapshot holds the three
	// connections, whole.
	synced := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-moved:
				t.Logf("%d snapshots during the move", n)
				synced <- nil
				return
			default:
			}
			snap, err := b.Sync(tctx(t))
			var ae *client.AckError
			if errors.As(err, &ae) && ae.Code == "unavailable" {
				continue
			}
			if err == nil && len(snap.Connections) != 3 {
				err = fmt.Errorf("%d connections", len(snap.Connections))
			}
			for i := 0; err == nil && i < len(snap.Connections); i++ {
				if c := snap.Connections[i]; c.UserID == "" || c.Epoch == 0 || len(c.State) < 2 {
					err = fmt.Errorf("connection %+v", c)
				}
			}
			if err != nil {
				synced <- fmt.Errorf("snapshot during the move: %w", err)
				return
			}
			n++
		}
	}()
	lastSeq := nextPresence(t, obs).Seq // the first patch: the move starts mid-traffic
	mustDo(t, rc, to, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID)
	mustDo(t, rc, from, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID)
	_, port, _ := strings.Cut(rc.addr(to), ":")
	migrate := func(keep func(string) bool) {
		for {
			keys, err := redis.Strings(rc.do(from, "CLUSTER", "GETKEYSINSLOT", slot, 100))
			if err != nil {
				t.Fatal(err)
			}
			keys = slices.DeleteFunc(keys, keep)
			if len(keys) == 0 {
				return
			}
			mustDo(t, rc, from, "MIGRATE", "127.0.0.1", port, keys[0], 0, 5000) // one at a time
		}
	}
	// First the connections but bob's: bob's sync then runs where the
	// room's keys and his are, and meets the others' moved away. It must
	// answer unavailable (the call retried for a moment), not internal.
	bobKey := testRoomTag(opts.Presence.Prefix, room) + "c:" + bobConn
	migrate(func(k string) bool { return !strings.Contains(k, "}:c:") || k == bobKey })
	if _, err := b.Sync(tctx(t)); err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("sync with the room's connections split between masters: %v; want unavailable", err)
	}
	migrate(func(string) bool { return false })
	for _, i := range append([]int{to, from}, rc.masters()...) {
		mustDo(t, rc, i, "CLUSTER", "SETSLOT", slot, "NODE", toID)
	}
	close(moved)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d patches, %d retried after unavailable", patches, retries)
	// The updates arrive in order, each seq one past the last. Redis drops
	// the slot's subscriptions when it moves, so the node may miss events
	// for a moment: then its clients see a gap in seq, or get
	// presence:resync, and sync; events go on from the snapshot's seq.
	v, resyncs := 2, 0
	sync := func() {
		resyncs++
		snap, err := obs.Sync(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		lastSeq = snap.Seq
		for _, c := range snap.Connections {
			if c.UserID == "alice" {
				var st struct{ V int }
				if err := json.Unmarshal(c.State, &st); err != nil || st.V < v-1 {
					t.Fatalf("alice's state after a resync: %s; want v %d or later", c.State, v-1)
				}
				v = st.V + 1
			}
		}
	}
	for v <= patches {
		ev := nextEvent(t, obs, 10*time.Second)
		switch ev.Name {
		case "presence:resync":
			sync()
		case "presence:event":
			e, err := client.ParsePresenceEvent(ev)
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq > lastSeq+1 { // a gap: the client syncs
				sync()
			}
			if e.Seq <= lastSeq {
				continue // in the snapshot already
			}
			if e.Seq != lastSeq+1 || e.Type != "update" || string(e.State) != fmt.Sprintf(`{"v":%d}`, v) {
				t.Fatalf("update %d after seq %d: got %+v %s", v, lastSeq, e, e.State)
			}
			lastSeq = e.Seq
			v++
		}
	}
	t.Logf("%d syncs after a gap or a resync", resyncs)
	snap, err := obs.Sync(tctx(t))
	if err != nil || len(snap.Connections) != 3 {
		t.Fatalf("after the move: %+v, %v", snap, err)
	}
	for _, c := range snap.Connections {
		if c.UserID == "alice" && string(c.State) != fmt.Sprintf(`{"v":%d}`, patches) {
			t.Fatalf("alice's state after the move: %s; want v %d", c.State, patches)
		}
	}

	// /healthz follows the cluster's state: a slot left without a master
	// puts the node that dropped it in state fail.
	if code := httpStatus(t, n1.url+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d; want 200", code)
	}
	owner := rc.node(cl.master(0)) // the node a keyless command goes to
	mustDo(t, rc, owner, "CLUSTER", "DELSLOTS", 0)
	waitFor(t, 10*time.Second, "healthz 503 with slot 0 unserved", func() bool {
		return httpStatus(t, n1.url+"/healthz") == http.StatusServiceUnavailable
	})
	mustDo(t, rc, owner, "CLUSTER", "ADDSLOTS", 0)
	waitFor(t, 10*time.Second, "healthz 200 with slot 0 back", func() bool {
		return httpStatus(t, n1.url+"/healthz") == http.StatusOK
	})
}

// A MOVED reply without a host (Redis 7 with cluster-preferred-endpoint-type
// unknown-endpoint answers "MOVED 3999 :6380") names a port on the host of
// the node that sent it, not on the local machine.
func TestClusterMovedWithoutHost(t *testing.T) {
	rc := testCluster(t)
	p, cl := clusterPool(t, rc.url(0))
	cl.every = time.Hour // only MOVED changes the map here
	key := fmt.Sprintf("{nohost%d}k", time.Now().UnixNano())
	c := p.Get()
	defer c.Close()
	if _, err := c.Do("SET", key, "v"); err != nil {
		t.Fatal(err)
	}
	slot := keySlot(key)
	owner := rc.node(cl.master(slot))
	wrong := rc.node(cl.master((slot + clusterSlots/2) % clusterSlots))
	if owner == wrong {
		t.Fatalf("slots %d and %d on one master", slot, (slot+clusterSlots/2)%clusterSlots)
	}
	mustDo(t, rc, wrong, "CONFIG", "SET", "cluster-preferred-endpoint-type", "unknown-endpoint")
	t.Cleanup(func() { _, _ = rc.do(wrong, "CONFIG", "SET", "cluster-preferred-endpoint-type", "ip") })
	_, err := rc.do(wrong, "GET", key)
	if want := fmt.Sprintf("MOVED %d :%d", slot, rc.nodes[owner].port); err == nil || err.Error() != want {
		t.Fatalf("GET on the wrong master: %v; want %s", err, want)
	}

	cl.mu.Lock()
	cl.slots[slot] = rc.addr(wrong) // a stale map sends the GET there
	cl.mu.Unlock()
	if got, err := redis.String(c.Do("GET", key)); err != nil || got != "v" {
		t.Fatalf("GET after a MOVED without host: %q, %v; want v", got, err)
	}
	if n := cl.moved.Load(); n != 1 {
		t.Errorf("MOVED followed %d times; want 1", n)
	}
	if got := cl.master(slot); got != rc.addr(owner) {
		t.Errorf("map after MOVED: slot %d on %q; want %s", slot, got, rc.addr(owner))
	}
	// The subscriptions' path (moveSlot) reads the host from the map.
	cl.mu.Lock()
	cl.slots[slot] = rc.addr(wrong)
	cl.mu.Unlock()
	cl.moveSlot(slot, fmt.Sprintf(":%d", rc.nodes[owner].port))
	if got := cl.master(slot); got != rc.addr(owner) {
		t.Errorf("map after moveSlot(:port): slot %d on %q; want %s", slot, got, rc.addr(owner))
	}
}
