package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"rtm/client"
)

// testNode is one server node run in-process on a loopback port.
type testNode struct {
	srv   *Server
	url   string
	stop  func()       // graceful shutdown; waits for Run to return
	dials atomic.Int32 // clients dialled by dial, which alternates versions
}

// testOptions returns options for a test: the shared Redis, a key prefix of
// its own (so tests run in parallel without touching each other's keys) and
// short timings.
func testOptions(t testing.TB) ServerOptions {
	return ServerOptions{
		RedisURL: sharedRedisURL,
		Presence: PresenceOptions{
			Prefix:          "t:" + newID()[:10] + ":",
			TTL:             2 * time.Second,
			ReaperInterval:  50 * time.Millisecond,
			DisconnectGrace: 300 * time.Millisecond,
		},
		Logger: slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// startNode runs a node with opts until the test ends.
func startNode(t testing.TB, opts ServerOptions, mods ...Module) *testNode {
	t.Helper()
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Use(NewChat(srv.Presence())); err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if err := srv.Use(m); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	n := &testNode{srv: srv, url: "http://" + ln.Addr().String()}
	waitFor(t, 10*time.Second, "the node to serve", func() bool { // any answer: Run is serving
		resp, err := http.Get(n.url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node shutdown: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("node did not shut down within 15 s")
		}
	}
	t.Cleanup(n.stop)
	return n
}

// dial connects a test client to node n. Unless the options name a
// protocol version, the clients of one node alternate between the two
// generations (4, 3, 4, ...), so every test with several clients runs both,
// side by side in the same rooms.
func dial(t testing.TB, n *testNode, opts ...client.Options) *client.Conn {
	t.Helper()
	var o client.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Protocol == 0 && o.Auth == nil {
		o.Protocol = 4 - int(n.dials.Add(1)-1)%2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, n.url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", n.url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// join joins c to room as user, failing the test on error.
func join(t *testing.T, c *client.Conn, room, user string, state any) *client.JoinAck {
	t.Helper()
	ack, err := c.Join(tctx(t), client.JoinRequest{RoomID: room, UserID: user, State: state})
	if err != nil {
		t.Fatalf("join %s/%s: %v", room, user, err)
	}
	return ack
}

// nextPresence returns c's next presence event, skipping other events.
func nextPresence(t *testing.T, c *client.Conn) *client.PresenceEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed while waiting for a presence event: %v", c.Err())
			}
			if e.Name != "presence:event" {
				continue
			}
			pe, err := client.ParsePresenceEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			return pe
		case <-timeout:
			t.Fatalf("no presence event within 10 s")
		}
	}
}

// nextEvent returns c's next event of any kind.
func nextEvent(t *testing.T, c *client.Conn, within time.Duration) client.Event {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatalf("connection closed while waiting for an event: %v", c.Err())
		}
		return e
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return client.Event{}
}

// noEvent fails if c receives any event within d, or is closed (a closed
// connection receives nothing, which proves nothing).
func noEvent(t *testing.T, c *client.Conn, d time.Duration) {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatalf("connection closed while checking that no event comes: %v", c.Err())
		}
		t.Fatalf("unexpected event %s %s", e.Name, e.Args)
	case <-time.After(d):
	}
}

// wantEvent checks the fields of a presence event.
func wantEvent(t *testing.T, e *client.PresenceEvent, typ string, seq int64, user, conn string) {
	t.Helper()
	if e.Type != typ || e.Seq != seq || e.UserID != user || (conn != "" && e.ConnID != conn) {
		t.Fatalf("got event %s seq %d user %q conn %q; want %s seq %d user %q conn %q",
			e.Type, e.Seq, e.UserID, e.ConnID, typ, seq, user, conn)
	}
}

// wantCode checks that err is an ack error with code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *client.AckError
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("got error %v; want code %s", err, code)
	}
}

func ptr[T any](v T) *T { return &v }

func TestJoinSnapshotAndEvents(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a, b := dial(t, n), dial(t, n)

	ackA := join(t, a, "room-1", "alice", map[string]any{"status": "online"})
	if ackA.Self.Epoch != 1 || len(ackA.Self.ConnID) != idLen {
		t.Fatalf("got self %+v; want epoch 1 and a %d-char connId", ackA.Self, idLen)
	}
	s := ackA.Snapshot
	if s.RoomID != "room-1" || s.Seq != 1 || !slices.Equal(s.Members, []string{"alice"}) || len(s.Connections) != 1 {
		t.Fatalf("got snapshot %+v; want room-1 seq 1 with alice alone", s)
	}
	if c := s.Connections[0]; c.ConnID != ackA.Self.ConnID || c.UserID != "alice" || string(c.State) != `{"status":"online"}` || c.Epoch != 1 || c.LastSeenMs == 0 {
		t.Fatalf("got connection %+v", c)
	}
	e := nextPresence(t, a)
	wantEvent(t, e, "join", 1, "alice", ackA.Self.ConnID)
	if !e.UserJoined || e.Count != (client.Count{Connections: 1, Members: 1}) || string(e.State) != `{"status":"online"}` || e.Epoch != 1 || e.TS == 0 {
		t.Fatalf("got join event %+v", e)
	}

	ackB := join(t, b, "room-1", "bob", nil)
	if ackB.Snapshot.Seq != 2 || len(ackB.Snapshot.Connections) != 2 {
		t.Fatalf("got snapshot %+v; want seq 2 with two connections", ackB.Snapshot)
	}
	members := slices.Sorted(slices.Values(ackB.Snapshot.Members))
	if !slices.Equal(members, []string{"alice", "bob"}) {
		t.Fatalf("got members %v; want alice, bob", members)
	}
	wantEvent(t, nextPresence(t, a), "join", 2, "bob", ackB.Self.ConnID)
	eb := nextPresence(t, b) // b sees its own join and nothing earlier
	wantEvent(t, eb, "join", 2, "bob", ackB.Self.ConnID)
	if eb.Count != (client.Count{Connections: 2, Members: 2}) || string(eb.State) != `{}` {
		t.Fatalf("got %+v", eb)
	}

	// A second tab of alice: userJoined false, members unchanged.
	a2 := dial(t, n)
	ack2 := join(t, a2, "room-1", "alice", nil)
	if len(ack2.Snapshot.Members) != 2 || len(ack2.Snapshot.Connections) != 3 {
		t.Fatalf("got %+v; want 2 members, 3 connections", ack2.Snapshot)
	}
	e = nextPresence(t, b)
	if e.Type != "join" || e.UserJoined || e.Count != (client.Count{Connections: 3, Members: 2}) {
		t.Fatalf("got %+v; want a join with userJoined false and count 3/2", e)
	}

	_, err := a.Join(tctx(t), client.JoinRequest{RoomID: "room-2", UserID: "alice"})
	wantCode(t, err, "already_joined")
}

func TestLeaveEmptiesRoomAndRestartsSeq(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	n := startNode(t, opts)
	a, b := dial(t, n), dial(t, n)
	ackA := join(t, a, "r", "alice", map[string]any{"x": 1})
	join(t, b, "r", "bob", nil)
	nextPresence(t, a)
	nextPresence(t, a)
	nextPresence(t, b)

	removed, err := b.Leave(tctx(t))
	if err != nil || !removed {
		t.Fatalf("leave: got %v, %v; want true", removed, err)
	}
	e := nextPresence(t, a)
	wantEvent(t, e, "leave", 3, "bob", "")
	if e.Reason != "leave" || !e.UserLeft || e.Count != (client.Count{Connections: 1, Members: 1}) {
		t.Fatalf("got %+v", e)
	}
	wantEvent(t, nextPresence(t, b), "leave", 3, "bob", "") // its own leave, then nothing
	if removed, err := b.Leave(tctx(t)); err != nil || removed {
		t.Fatalf("second leave: got %v, %v; want false", removed, err)
	}

	if removed, err := a.Leave(tctx(t)); err != nil || !removed {
		t.Fatalf("leave: got %v, %v", removed, err)
	}
	e = nextPresence(t, a)
	if e.Type != "leave" || e.ConnID != ackA.Self.ConnID || string(e.State) != `{"x":1}` || e.Count != (client.Count{}) {
		t.Fatalf("got %+v", e)
	}
	if keys := keysWithPrefix(t, opts.RedisURL, opts.Presence.Prefix); len(keys) != 0 {
		t.Fatalf("keys left behind: %v", keys)
	}
	noEvent(t, b, 100*time.Millisecond)

	ack := join(t, b, "r", "bob", nil)
	if ack.Snapshot.Seq != 1 {
		t.Fatalf("got seq %d after the room emptied; want 1", ack.Snapshot.Seq)
	}
}

func TestHeartbeatEpochsAndPatches(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a, obs := dial(t, n), dial(t, n)
	join(t, obs, "r", "obs", nil)
	nextPresence(t, obs)
	ack := join(t, a, "r", "alice", map[string]any{"a": 1, "b": "two"})
	nextPresence(t, obs)
	ctx := tctx(t)

	hb, err := a.Heartbeat(ctx, client.HeartbeatRequest{})
	if err != nil || hb.Epoch != 1 || hb.Changed {
		t.Fatalf("plain heartbeat: got %+v, %v; want epoch 1 unchanged", hb, err)
	}
	hb, err = a.Heartbeat(ctx, client.HeartbeatRequest{Epoch: ptr(int64(1)), PatchState: map[string]any{"a": nil, "c": []any{}, "b": "two"}})
	if err != nil || hb.Epoch != 2 || !hb.Changed {
		t.Fatalf("patch: got %+v, %v; want epoch 2 changed", hb, err)
	}
	e := nextPresence(t, obs)
	if e.Type != "update" || e.Epoch != 2 || e.ConnID != ack.Self.ConnID || string(e.State) != `{"b":"two","c":[]}` || e.Seq != 3 {
		t.Fatalf("got %+v state %s; want update epoch 2 state {b,c}", e, e.State)
	}
	// The same patch again changes nothing: no event, epoch kept.
	hb, err = a.Heartbeat(ctx, client.HeartbeatRequest{Epoch: ptr(int64(2)), PatchState: map[string]any{"b": "two"}})
	if err != nil || hb.Epoch != 2 || hb.Changed {
		t.Fatalf("no-op patch: got %+v, %v", hb, err)
	}
	_, err = a.Heartbeat(ctx, client.HeartbeatRequest{Epoch: ptr(int64(1))})
	wantCode(t, err, "stale_epoch")
	_, err = a.Heartbeat(ctx, client.HeartbeatRequest{Epoch: ptr(int64(1)), PatchState: map[string]any{"z": 1}})
	wantCode(t, err, "stale_epoch")
	noEvent(t, obs, 100*time.Millisecond)

	snap, err := obs.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range snap.Connections {
		if c.ConnID == ack.Self.ConnID && (string(c.State) != `{"b":"two","c":[]}` || c.Epoch != 2) {
			t.Fatalf("got %+v in sync", c)
		}
	}
	if snap.Seq != 3 {
		t.Fatalf("sync seq %d; want 3", snap.Seq)
	}
}

// The state limit counts compact JSON without HTML escaping: 4096 bytes of
// '<' and '&' fit exactly, one more byte does not, and nothing is written.
func TestStateSizeLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a := dial(t, n)
	// {"k":"…"} is 8 bytes around the value.
	fits := map[string]any{"k": strings.Repeat("<&", (4096-8)/2)}
	ack := join(t, a, "r", "alice", fits)
	var got map[string]any
	if err := json.Unmarshal(ack.Snapshot.Connections[0].State, &got); err != nil || got["k"] != fits["k"] {
		t.Fatalf("got state %.40s…, %v", ack.Snapshot.Connections[0].State, err)
	}
	if size := len(canonicalJSON(got)); size != 4096 {
		t.Fatalf("got state of %d bytes; want 4096", size)
	}
	ctx := tctx(t)
	_, err := a.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"x": 1}})
	wantCode(t, err, "payload_too_large")
	hb, err := a.Heartbeat(ctx, client.HeartbeatRequest{})
	if err != nil || hb.Epoch != 1 {
		t.Fatalf("got %+v, %v; the refused patch must write nothing", hb, err)
	}
	// A patch both too large and stale is payload_too_large (it ranks first).
	_, err = a.Heartbeat(ctx, client.HeartbeatRequest{Epoch: ptr(int64(0)), PatchState: map[string]any{"x": 1}})
	wantCode(t, err, "payload_too_large")
	// Replacing the big value with a small one is fine.
	if hb, err = a.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"k": "small", "x": 1}}); err != nil || hb.Epoch != 2 {
		t.Fatalf("got %+v, %v", hb, err)
	}

	b := dial(t, n)
	tooBig := map[string]any{"k": strings.Repeat("<", 4096-8+1)}
	_, err = b.Join(ctx, client.JoinRequest{RoomID: "r", UserID: "bob", State: tooBig})
	wantCode(t, err, "payload_too_large")
	if snap, _ := a.Sync(ctx); len(snap.Connections) != 1 {
		t.Fatalf("refused join left %d connections", len(snap.Connections))
	}
}

// A patch or a resume whose merged state reaches exactly 4096 bytes is
// accepted; one byte more is payload_too_large and writes nothing.
func TestStateSizeLimitMerged(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Presence.DisconnectGrace = time.Minute // the resumed connection waits
	n := startNode(t, opts)
	ctx := tctx(t)
	// {"a":"A","b":"B"} is 15 bytes around the two values.
	const aLen = 1000
	bLen := 4096 - 15 - aLen
	a, obs := dial(t, n), dial(t, n)
	join(t, obs, "r", "obs", nil)
	join(t, a, "r", "alice", map[string]any{"a": strings.Repeat("x", aLen)})

	_, err := a.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"b": strings.Repeat("<", bLen+1)}})
	wantCode(t, err, "payload_too_large")
	hb, err := a.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"b": strings.Repeat("<", bLen)}})
	if err != nil || hb.Epoch != 2 || !hb.Changed {
		t.Fatalf("patch to exactly 4096 bytes: got %+v, %v; want epoch 2, changed", hb, err)
	}
	_, err = a.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"c": 1}})
	wantCode(t, err, "payload_too_large")
	wantState := func(c *client.Conn, size, epoch int) string {
		t.Helper()
		snap, err := c.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, conn := range snap.Connections {
			if conn.UserID == "alice" {
				var st map[string]any
				if err := json.Unmarshal(conn.State, &st); err != nil || len(canonicalJSON(st)) != size || conn.Epoch != int64(epoch) {
					t.Fatalf("got state of %d bytes at epoch %d, %v; want %d bytes at epoch %d",
						len(canonicalJSON(st)), conn.Epoch, err, size, epoch)
				}
				return conn.ConnID
			}
		}
		t.Fatal("alice is not in the room")
		return ""
	}
	connID := wantState(obs, 4096, 2)

	// Resume: the merge of the stored state and the given one is checked too.
	if _, err := a.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"b": nil}}); err != nil {
		t.Fatal(err)
	}
	wantState(obs, 4096-bLen-7, 3)
	_ = a.Drop()
	a2 := dial(t, n)
	resume := &client.Self{ConnID: connID, Epoch: 3}
	_, err = a2.Join(ctx, client.JoinRequest{RoomID: "r", UserID: "alice", Resume: resume,
		State: map[string]any{"b": strings.Repeat("&", bLen+1)}})
	wantCode(t, err, "payload_too_large")
	wantState(obs, 4096-bLen-7, 3)
	res, err := a2.Join(ctx, client.JoinRequest{RoomID: "r", UserID: "alice", Resume: resume,
		State: map[string]any{"b": strings.Repeat("&", bLen)}})
	if err != nil || res.Self.ConnID != connID || res.Self.Epoch != 4 {
		t.Fatalf("resume to exactly 4096 bytes: got %+v, %v; want %s at epoch 4", res, err, connID)
	}
	wantState(obs, 4096, 4)
}

// The join script's minSeq is the boundary between the snapshot it returns
// and the events the socket gets: the seq of the script's own event (the
// join, or a resume's update), which is both in the snapshot and delivered;
// or, for a resume that emits nothing, the seq after the snapshot's.
func TestJoinMinSeq(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Presence.ReaperInterval = time.Hour
	n := startNode(t, opts)
	p := n.srv.Presence()
	ctx := tctx(t)
	msgs, mark := listenBuckets(t, n.srv, []string{"r"}) // room r's events
	// events returns the presence events published up to a marker.
	events := func() []envelope {
		t.Helper()
		var out []envelope
		for markers := mark(); markers > 0; {
			var data []byte
			select {
			case data = <-msgs:
			case <-time.After(10 * time.Second):
				t.Fatal("no marker within 10 s")
			}
			var e envelope
			if err := json.Unmarshal(data, &e); err != nil {
				t.Fatal(err)
			}
			switch e.Kind {
			case "marker":
				markers--
			case "":
				out = append(out, e)
			}
		}
		return out
	}
	events()
	joinArgs := func(sid, cid, user, st, resumeID, resumeEpoch string, patch ...any) []any {
		args := p.joinArgs("r", sid, cid, resumeID, user, jsonString(user), st, 60000, 120000, 4096, resumeID, resumeEpoch, "full", 100, 0)
		return beforeLast(args, patch...)
	}
	call := func(args []any) (connID string, snapSeq, minSeq int64) {
		t.Helper()
		reply, err := redis.Values(p.do(ctx, joinScript, args...))
		if err != nil || len(reply) != 10 {
			t.Fatalf("join script: got %v, %v", reply, err)
		}
		var epoch, snap string
		if _, err := redis.Scan(reply, &connID, &epoch, &snap, &minSeq); err != nil {
			t.Fatal(err)
		}
		var sn client.Snapshot
		if err := json.Unmarshal([]byte(snap), &sn); err != nil {
			t.Fatal(err)
		}
		return connID, sn.Seq, minSeq
	}

	for i := int64(1); i <= 3; i++ { // fresh joins
		_, snapSeq, minSeq := call(joinArgs(newID(), newID(), "u", "{}", "", "0"))
		evs := events()
		if snapSeq != i || minSeq != i || len(evs) != 1 || evs[0].Type != "join" || evs[0].Seq != i {
			t.Fatalf("join %d: snapshot seq %d, minSeq %d, events %+v; want all %d", i, snapSeq, minSeq, evs, i)
		}
	}
	cid := newID()
	call(joinArgs(newID(), cid, "alice", `{"k":1}`, "", "0", `"k"`, "1"))
	events()
	// A resume that changes nothing emits nothing: events start after the snapshot.
	_, snapSeq, minSeq := call(joinArgs(newID(), newID(), "alice", "{}", cid, "1"))
	if evs := events(); snapSeq != 4 || minSeq != 5 || len(evs) != 0 {
		t.Fatalf("plain resume: snapshot seq %d, minSeq %d, events %+v; want 4, 5 and none", snapSeq, minSeq, evs)
	}
	// A resume with a new state emits its update: in the snapshot and delivered.
	got, snapSeq, minSeq := call(joinArgs(newID(), newID(), "alice", `{"k":2}`, cid, "2", `"k"`, "2"))
	evs := events()
	if got != cid || snapSeq != 5 || minSeq != 5 || len(evs) != 1 || evs[0].Type != "update" || evs[0].Seq != 5 {
		t.Fatalf("resume with state: conn %s, snapshot seq %d, minSeq %d, events %+v; want %s, 5, 5 and the update",
			got, snapSeq, minSeq, evs, cid)
	}
}

// Events from before a socket's join are not delivered to it: those that
// reach its membership while its join is in flight are dropped up to the
// join's seq, and the rest go out in order. Driven on the hub itself.
func TestStaleEventsDropped(t *testing.T) {
	h := newHub(slog.New(slog.NewTextHandler(newLogWriter(t), nil)))
	s := bareSocket("s")
	h.subscribe(s, "r", modeEach)
	for seq := 1; seq <= 4; seq++ {
		h.deliver([]byte(fmt.Sprintf(`{"r":"r","e":"presence:event","q":%d,"t":"update","c":"x","d":{"seq":%d}}`, seq, seq)))
	}
	h.activate(s, "r", "c1", 3) // the join's own event is seq 3
	h.deliver([]byte(`{"r":"r","e":"presence:event","q":5,"t":"update","c":"x","d":{"seq":5}}`))
	var got []string
	for _, f := range s.sess.queue {
		got = append(got, string(f))
	}
	want := []string{`42["presence:event",{"seq":3}]`, `42["presence:event",{"seq":4}]`, `42["presence:event",{"seq":5}]`}
	if !slices.Equal(got, want) {
		t.Fatalf("the socket got %q; want %q", got, want)
	}
}

func TestUnicodeRoundTrip(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a, b := dial(t, n), dial(t, n)
	room, user := "café-会议室-🎉", "zoë-用户-👍"
	state := map[string]any{"note": "héllo wörld 中文 🚀", "emoji": "😀"}
	ack := join(t, a, room, user, state)
	if ack.Snapshot.RoomID != room || ack.Snapshot.Members[0] != user {
		t.Fatalf("got %+v", ack.Snapshot)
	}
	var got map[string]any
	if err := json.Unmarshal(ack.Snapshot.Connections[0].State, &got); err != nil || got["note"] != state["note"] || got["emoji"] != state["emoji"] {
		t.Fatalf("got state %s", ack.Snapshot.Connections[0].State)
	}
	join(t, b, room, "bob", nil)
	nextPresence(t, a)
	e := nextPresence(t, a)
	if e.RoomID != room || e.UserID != "bob" {
		t.Fatalf("got %+v", e)
	}
	id, _, err := b.Chat(tctx(t), "grüße 你好 🎈")
	if err != nil || id == "" {
		t.Fatalf("chat: %v", err)
	}
	for {
		ev := nextEvent(t, a, 5*time.Second)
		if ev.Name != "chat:message" {
			continue
		}
		m, err := client.ParseChatMessage(ev)
		if err != nil || m.Text != "grüße 你好 🎈" || m.RoomID != room || m.UserID != "bob" || m.ID != id {
			t.Fatalf("got %+v, %v", m, err)
		}
		break
	}
}

// Modules are registered before the server starts; later is an error.
func TestUseAfterRunFails(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	if err := n.srv.Use(greeter{}); err == nil || !strings.Contains(err.Error(), "after the server started") {
		t.Fatalf("got %v; want an error", err)
	}
}

// bareSocket returns a socket with a session of its own and no transport:
// what is sent to it stays in its queue.
func bareSocket(id string) *Socket {
	sess := &session{eng: &Engine{opts: engineOptions{maxQueueBytes: 1 << 20}}, id: id, done: make(chan struct{})}
	sess.sock = &Socket{sess: sess, id: id}
	return sess.sock
}
