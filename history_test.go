package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"rtm/client"
)

// historyOptions are test options with a history of ttl and max, a grace
// long enough for the away client to resume, and rates that let one client
// send a burst of events.
func historyOptions(opts ServerOptions, ttl time.Duration, max int) ServerOptions {
	opts.Presence.History = HistoryOptions{TTL: ttl, Max: max}
	opts.Presence.DisconnectGrace = 20 * time.Second
	fast := Rate{PerSecond: 10000, Burst: 10000}
	opts.Rates = RateLimits{Heartbeat: fast, Patch: fast, Chat: fast, Other: fast}
	return opts
}

// eventPos returns the position of a presence event or chat message.
func eventPos(t *testing.T, e client.Event) position {
	t.Helper()
	switch e.Name {
	case "presence:event":
		pe, err := client.ParsePresenceEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		return position{pe.Seq, 0}
	case "chat:message":
		m, err := client.ParseChatMessage(e)
		if err != nil {
			t.Fatal(err)
		}
		return position{m.Seq, m.Sub}
	}
	t.Fatalf("event %s has no position", e.Name)
	return position{}
}

// awayTraffic makes b send n events, alternating a state patch (an update
// event) and a chat message, and returns what each one was: "u<i>" or the
// chat text "m<i>".
func awayTraffic(t *testing.T, b *client.Conn, n int) []string {
	t.Helper()
	var sent []string
	for i := range n {
		if i%2 == 0 {
			if _, err := b.Heartbeat(tctx(t), client.HeartbeatRequest{PatchState: map[string]any{"i": i}}); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, "u"+strconv.Itoa(i))
		} else {
			if _, _, err := b.Chat(tctx(t), "m"+strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, "m"+strconv.Itoa(i))
		}
	}
	return sent
}

// what describes an event as awayTraffic names it.
func what(t *testing.T, e client.Event) string {
	t.Helper()
	if e.Name == "chat:message" {
		m, err := client.ParseChatMessage(e)
		if err != nil {
			t.Fatal(err)
		}
		return m.Text
	}
	pe, err := client.ParsePresenceEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ I *int }
	_ = json.Unmarshal(pe.State, &st)
	if pe.Type == "update" && st.I != nil {
		return "u" + strconv.Itoa(*st.I)
	}
	return pe.Type + ":" + pe.UserID
}

// awayClient joins alice to room r on n (with bob, already there, on
// b's side) and returns her connection, her join ack and her position after
// her own join event.
func awayClient(t *testing.T, n *testNode, b *client.Conn) (*client.Conn, *client.JoinAck, client.Since) {
	t.Helper()
	a := dial(t, n)
	ack := join(t, a, "r", "alice", nil)
	e := nextPresence(t, a)
	nextPresence(t, b)
	if ack.History == nil || ack.History.Epoch == "" {
		t.Fatalf("join ack %+v has no history epoch", ack)
	}
	return a, ack, client.Since{Seq: e.Seq, Epoch: ack.History.Epoch}
}

// A client away while 100 presence events and chat messages flow gets
// exactly those 100, in order, then the live ones; on either protocol
// generation, through a resume or through presence:sync.
func TestRecoverWhatWasMissed(t *testing.T) { backends(t, testRecoverWhatWasMissed) }

func testRecoverWhatWasMissed(t *testing.T, opts ServerOptions) {
	opts = historyOptions(opts, 30*time.Second, 1000)
	n1, n2 := startNode(t, opts), startNode(t, opts)
	b := dial(t, n2)
	join(t, b, "r", "bob", nil)
	nextPresence(t, b)
	a, ack, last := awayClient(t, n1, b)

	_ = a.Drop()
	sent := awayTraffic(t, b, 100)
	for range sent {
		nextEvent(t, b, 5*time.Second) // b sees its own
	}

	a2 := dial(t, n2)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &ack.Self, Since: &last})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered == nil || !*res.Recovered || res.Replayed != 100 || res.Self.ConnID != ack.Self.ConnID {
		t.Fatalf("got %+v; want recovered with 100 events replayed on the same connection", res)
	}
	prev := position{last.Seq, last.Sub}
	for i, want := range sent {
		e := nextEvent(t, a2, 5*time.Second)
		at := eventPos(t, e)
		if got := what(t, e); got != want || !at.after(prev) {
			t.Fatalf("replayed event %d: got %s at %v after %v; want %s", i, got, at, prev, want)
		}
		prev = at
	}
	if _, _, err := b.Chat(tctx(t), "live"); err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, a2, 5*time.Second)
	if got := what(t, e); got != "live" || !eventPos(t, e).after(prev) {
		t.Fatalf("got %s; want the live message next", got)
	}
	noEvent(t, a2, 100*time.Millisecond)

	// The answer to presence:resync: sync with the position seen last.
	last = client.Since{Seq: prev.seq, Sub: prev.sub + 1, Epoch: res.History.Epoch}
	sent = awayTraffic(t, b, 10)
	for range sent {
		nextEvent(t, a2, 5*time.Second) // a2 is live: it gets them as they come
	}
	sync, err := a2.SyncSince(tctx(t), last)
	if err != nil || !sync.Recovered || sync.Replayed != 10 {
		t.Fatalf("got %+v, %v; want the 10 events replayed", sync, err)
	}
	for i, want := range sent {
		if got := what(t, nextEvent(t, a2, 5*time.Second)); got != want {
			t.Fatalf("sync replay %d: got %s; want %s", i, got, want)
		}
	}
	noEvent(t, a2, 100*time.Millisecond)
}

// historyKeys returns the keys of room's history stream and hash.
func historyKeys(n *testNode, room string) (stream, hash string) {
	tag := n.srv.presence.roomTag(room)
	return tag + "h", tag + "hm"
}

// do runs one command on n's Redis (on a cluster, at the key's master).
func do(t *testing.T, n *testNode, cmd string, args ...any) any {
	t.Helper()
	c := n.srv.pool.Get()
	defer c.Close()
	r, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return r
}

// notRecovered checks a join that could not recover: recovered false,
// nothing replayed, a full snapshot of the room as it is.
func notRecovered(t *testing.T, res *client.JoinAck, err error, users ...string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered == nil || *res.Recovered || res.Replayed != 0 {
		t.Fatalf("got %+v; want recovered false", res)
	}
	if got := slices.Sorted(slices.Values(res.Snapshot.Members)); !slices.Equal(got, users) {
		t.Fatalf("snapshot members %v; want %v (sorted)", got, users)
	}
}

// A client away longer than the history reaches back is told so, gets a
// fresh snapshot, and nothing replayed, then the live events once each.
func TestRecoverTooLate(t *testing.T) { backends(t, testRecoverTooLate) }

func testRecoverTooLate(t *testing.T, opts ServerOptions) {
	const ttl = 300 * time.Millisecond
	opts = historyOptions(opts, ttl, 1000)
	n := startNode(t, opts)
	b := dial(t, n)
	join(t, b, "r", "bob", nil)
	nextPresence(t, b)
	a, ack, last := awayClient(t, n, b)
	_ = a.Drop()

	// Events keep flowing until the history no longer holds a's position.
	stream, _ := historyKeys(n, "r")
	waitForEvery(t, 10*time.Second, 50*time.Millisecond, "the history to move past the client", func() bool {
		awayTraffic(t, b, 2)
		first, _ := redis.Values(do(t, n, "XRANGE", stream, "-", "+", "COUNT", 1), nil)
		if len(first) == 0 {
			return false
		}
		entry, _ := redis.Values(first[0], nil)
		id, _ := redis.String(entry[0], nil)
		qs, ss, _ := strings.Cut(id, "-")
		q, _ := strconv.ParseInt(qs, 10, 64)
		sub, _ := strconv.ParseInt(ss, 10, 64)
		return position{q, sub}.after(position{last.Seq, last.Sub + 1})
	})
	for len(b.Events()) > 0 {
		<-b.Events()
	}
	a2 := dial(t, n)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &ack.Self, Since: &last})
	notRecovered(t, res, err, "alice", "bob")
	if len(res.Snapshot.Connections) != 2 {
		t.Fatalf("snapshot %+v; want both connections", res.Snapshot)
	}
	noEvent(t, a2, 100*time.Millisecond)
	if _, _, err := b.Chat(tctx(t), "live"); err != nil {
		t.Fatal(err)
	}
	if got := what(t, nextEvent(t, a2, 5*time.Second)); got != "live" {
		t.Fatalf("got %s; want the live message", got)
	}
	noEvent(t, a2, 100*time.Millisecond)
}

// A room that emptied and started over while the client was away is not
// replayed from: its history has another epoch.
func TestRecoverRoomRestarted(t *testing.T) { backends(t, testRecoverRoomRestarted) }

func testRecoverRoomRestarted(t *testing.T, opts ServerOptions) {
	opts = historyOptions(opts, 30*time.Second, 1000)
	opts.Presence.DisconnectGrace = -1 // a dropped socket leaves at once
	n := startNode(t, opts)
	b := dial(t, n)
	join(t, b, "r", "bob", nil)
	nextPresence(t, b)
	a, _, last := awayClient(t, n, b)
	_ = a.Drop()
	if _, err := b.Leave(tctx(t)); err != nil {
		t.Fatal(err)
	}
	seqKey := n.srv.presence.roomTag("r") + "seq"
	waitFor(t, 5*time.Second, "the room to empty", func() bool {
		v, _ := redis.Int(do(t, n, "EXISTS", seqKey), nil)
		return v == 0
	})

	// The room starts over and goes past where a was.
	c := dial(t, n)
	join(t, c, "r", "carol", nil)
	nextPresence(t, c)
	awayTraffic(t, c, 2*int(last.Seq)+4)

	a2 := dial(t, n)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Since: &last})
	notRecovered(t, res, err, "alice", "carol")
	if res.History.Epoch == last.Epoch {
		t.Fatalf("the restarted room has the old epoch %s", last.Epoch)
	}
	e := nextPresence(t, a2) // its own join, and nothing of the old room
	if e.Type != "join" || e.UserID != "alice" || e.Seq != res.Snapshot.Seq {
		t.Fatalf("got %+v; want alice's join", e)
	}
	noEvent(t, a2, 100*time.Millisecond)
}

// A history lost (deleted, as a failover to a replica that had not got it
// would) does not recover; the snapshot is right.
func TestRecoverHistoryLost(t *testing.T) { backends(t, testRecoverHistoryLost) }

func testRecoverHistoryLost(t *testing.T, opts ServerOptions) {
	opts = historyOptions(opts, 30*time.Second, 1000)
	n := startNode(t, opts)
	b := dial(t, n)
	join(t, b, "r", "bob", nil)
	nextPresence(t, b)
	a, ack, last := awayClient(t, n, b)
	_ = a.Drop()
	awayTraffic(t, b, 10)
	stream, hash := historyKeys(n, "r")
	do(t, n, "DEL", stream)

	a2 := dial(t, n)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &ack.Self, Since: &last})
	notRecovered(t, res, err, "alice", "bob")
	for _, c := range res.Snapshot.Connections {
		if c.UserID == "bob" && string(c.State) != `{"i":8}` {
			t.Fatalf("bob's state %s; want his last patch", c.State)
		}
	}
	noEvent(t, a2, 100*time.Millisecond)

	// The whole history gone (its epoch too): a new epoch, no recovery.
	last = client.Since{Seq: res.Snapshot.Seq, Epoch: res.History.Epoch}
	_ = a2.Drop()
	awayTraffic(t, b, 4)
	do(t, n, "DEL", stream, hash)
	awayTraffic(t, b, 2)
	a3 := dial(t, n)
	res, err = a3.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &res.Self, Since: &last})
	notRecovered(t, res, err, "alice", "bob")
	if res.History.Epoch == last.Epoch {
		t.Fatal("a history that was lost kept its epoch")
	}
}

// A room's history stays within its bounds under a steady flow: at most
// max entries, none older than the ttl before the newest, and both keys
// expire.
func TestHistoryBounded(t *testing.T) { backends(t, testHistoryBounded) }

func testHistoryBounded(t *testing.T, opts ServerOptions) {
	const ttl, max = 400 * time.Millisecond, 50
	opts = historyOptions(opts, ttl, max)
	n := startNode(t, opts)
	b := dial(t, n)
	join(t, b, "r", "bob", nil)
	stream, hash := historyKeys(n, "r")

	awayTraffic(t, b, 3*max)
	if l, _ := redis.Int(do(t, n, "XLEN", stream), nil); l != max {
		t.Fatalf("XLEN %d after %d events; want %d", l, 3*max, max)
	}
	// A steady flow for longer than the ttl: entries older than it go.
	deadline := time.Now().Add(3 * ttl)
	for time.Now().Before(deadline) {
		awayTraffic(t, b, 2)
		waitFor(t, time.Second, "a tick", func() bool { return true })
	}
	entries, err := redis.Values(do(t, n, "XRANGE", stream, "-", "+"), nil)
	if err != nil || len(entries) == 0 || len(entries) > max {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	ts := func(e any) int64 {
		fields, _ := redis.Values(e, nil)
		kv, _ := redis.Strings(fields[1], nil)
		v, _ := strconv.ParseInt(kv[1], 10, 64)
		return v
	}
	newest := ts(entries[len(entries)-1])
	if oldest := ts(entries[0]); newest-oldest > ttl.Milliseconds() {
		t.Fatalf("oldest entry %d ms before the newest; the ttl is %v", newest-oldest, ttl)
	}
	for key, most := range map[string]time.Duration{stream: ttl, hash: 4 * ttl} {
		if pttl, _ := redis.Int64(do(t, n, "PTTL", key), nil); pttl <= 0 || pttl > most.Milliseconds() {
			t.Fatalf("PTTL %s = %d; want 1..%d", key, pttl, most.Milliseconds())
		}
	}
	// Quiet, the history expires; the room, empty, leaves nothing.
	if _, err := b.Leave(tctx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the history to go", func() bool {
		v, _ := redis.Int(do(t, n, "EXISTS", stream, hash), nil)
		return v == 0
	})
}

// With history off, a join with a position answers recovered false, the
// ack has no history, and chat messages still carry their position.
func TestHistoryOff(t *testing.T) {
	t.Parallel()
	opts := historyOptions(testOptions(t), -1, -1)
	n := startNode(t, opts)
	a := dial(t, n)
	res, err := a.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Since: &client.Since{Seq: 1, Epoch: "1"}})
	if err != nil || res.History != nil || res.Recovered == nil || *res.Recovered {
		t.Fatalf("got %+v, %v", res, err)
	}
	nextPresence(t, a)
	if _, _, err := a.Chat(tctx(t), "hi"); err != nil {
		t.Fatal(err)
	}
	if at := eventPos(t, nextEvent(t, a, 5*time.Second)); at != (position{1, 1}) {
		t.Fatalf("chat at %v; want 1-1", at)
	}
	stream, hash := historyKeys(n, "r")
	if v, _ := redis.Int(do(t, n, "EXISTS", stream, hash), nil); v != 0 {
		t.Fatalf("history keys exist with history off")
	}
}

// A position past the room's current one, in the right epoch (a client's
// bug, or a history that lost its end), is not recovered from: nothing is
// replayed and the snapshot is a fresh one.
func TestRecoverFromAhead(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a := dial(t, n)
	ack := join(t, a, "r", "alice", nil)
	nextPresence(t, a)
	if _, _, err := a.Chat(tctx(t), "one"); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, a, 5*time.Second)
	for _, since := range []client.Since{{Seq: 1, Sub: 2, Epoch: ack.History.Epoch}, {Seq: 5, Epoch: ack.History.Epoch}} {
		res, err := a.SyncSince(tctx(t), since)
		if err != nil || res.Recovered || res.Replayed != 0 || len(res.Snapshot.Connections) != 1 {
			t.Fatalf("sync since %+v: got %+v, %v; want recovered false and a fresh snapshot", since, res, err)
		}
	}
}

// A bad since is invalid_payload, on join and sync.
func TestSinceInvalid(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a := dial(t, n)
	for _, since := range []string{`1`, `{"seq":1}`, `{"seq":-1,"epoch":"1"}`, `{"seq":1,"epoch":"x"}`,
		`{"seq":1,"epoch":1}`, `{"seq":1,"sub":"a","epoch":"1"}`} {
		wantAckCode(t, a, "presence:join", `{"roomId":"r","userId":"alice","since":`+since+`}`, "invalid_payload")
		wantAckCode(t, a, "presence:sync", `{"since":`+since+`}`, "invalid_payload")
	}
	wantAckCode(t, a, "presence:sync", `{"since":{"seq":1,"epoch":"1"}}`, "not_joined")
}

// wantAckCode sends event with payload and checks that the ack is an error
// of code.
func wantAckCode(t *testing.T, c *client.Conn, event, payload, code string) {
	t.Helper()
	raw, err := c.Call(tctx(t), event, json.RawMessage(payload))
	if err != nil {
		t.Fatal(err)
	}
	var ack struct {
		OK    bool
		Error struct{ Code string }
	}
	if err := json.Unmarshal(raw, &ack); err != nil || ack.OK || ack.Error.Code != code {
		t.Fatalf("%s %s: got %s; want %s", event, payload, raw, code)
	}
}

// A client that recovers while the room is busy gets every event once, in
// order: the replay, then the live events that came during its join.
func TestRecoverWhileLive(t *testing.T) { backends(t, testRecoverWhileLive) }

func testRecoverWhileLive(t *testing.T, opts ServerOptions) {
	opts = historyOptions(opts, 30*time.Second, 1000)
	n1, n2 := startNode(t, opts), startNode(t, opts)
	b := dial(t, n2)
	join(t, b, "r", "bob", nil)
	nextPresence(t, b)
	a, ack, last := awayClient(t, n1, b)
	_ = a.Drop()
	awayTraffic(t, b, 20)

	done := make(chan struct{})
	go func() { // owned by the test, which waits for it below
		defer close(done)
		for i := range 100 {
			if _, _, err := b.Chat(tctx(t), "live"+strconv.Itoa(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	a2 := dial(t, n1)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &ack.Self, Since: &last})
	<-done
	if err != nil || res.Recovered == nil || !*res.Recovered || res.Replayed < 20 {
		t.Fatalf("got %+v, %v; want at least the 20 events of the absence replayed", res, err)
	}
	prev := position{last.Seq, last.Sub}
	for {
		e := nextEvent(t, a2, 5*time.Second)
		at := eventPos(t, e)
		if at != (position{prev.seq, prev.sub + 1}) && at != (position{prev.seq + 1, 0}) {
			t.Fatalf("%s at %v after %v: a gap or a duplicate", what(t, e), at, prev)
		}
		prev = at
		if what(t, e) == "live99" {
			break
		}
	}
	noEvent(t, a2, 100*time.Millisecond)
}

// A client back after its connection is gone (a reload past the grace)
// joins fresh and still recovers: its old connection's leave, what came
// after, and its new join, once each.
func TestRecoverAfterTheGrace(t *testing.T) { backends(t, testRecoverAfterTheGrace) }

func testRecoverAfterTheGrace(t *testing.T, opts ServerOptions) {
	opts = historyOptions(opts, 30*time.Second, 1000)
	opts.Presence.DisconnectGrace = 200 * time.Millisecond
	n := startNode(t, opts)
	b := dial(t, n)
	join(t, b, "r", "bob", nil)
	nextPresence(t, b)
	a, ack, last := awayClient(t, n, b)
	_ = a.Drop()
	if e := nextPresence(t, b); e.Type != "leave" || e.Reason != "disconnect" || e.ConnID != ack.Self.ConnID {
		t.Fatalf("got %+v; want alice's leave after the grace", e)
	}
	if _, _, err := b.Chat(tctx(t), "while away"); err != nil {
		t.Fatal(err)
	}

	a2 := dial(t, n)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &ack.Self, Since: &last})
	if err != nil || res.Recovered == nil || !*res.Recovered || res.Replayed != 3 || res.Self.ConnID == ack.Self.ConnID {
		t.Fatalf("got %+v, %v; want a new connection that recovered 3 events", res, err)
	}
	if res.Snapshot.Count == nil || res.Snapshot.Count.Connections != 2 || len(res.Snapshot.Connections) != 0 {
		t.Fatalf("snapshot %+v; want counts only", res.Snapshot)
	}
	for _, want := range []string{"leave:alice", "while away", "join:alice"} {
		if got := what(t, nextEvent(t, a2, 5*time.Second)); got != want {
			t.Fatalf("got %s; want %s", got, want)
		}
	}
	noEvent(t, a2, 100*time.Millisecond)
}

// The hub sends a recovering socket the replay, then the buffered live
// events after it, and drops the live copies of replayed events that arrive
// late (published before the join's script ran, delivered after it
// returned), presence events and recorded module messages alike, without
// taking them for a room that started over.
func TestReplayThenLiveInTheHub(t *testing.T) {
	h := newHub(slog.New(slog.NewTextHandler(newLogWriter(t), nil)))
	s := bareSocket("s")
	h.subscribe(s, "r", modeEach)
	presence := func(seq int) string {
		return fmt.Sprintf(`{"r":"r","e":"presence:event","q":%d,"t":"update","c":"x","d":{"seq":%d}}`, seq, seq)
	}
	chat := func(seq, sub int) string {
		return fmt.Sprintf(`{"r":"r","e":"chat:message","hq":%d,"hs":%d,"d":{"seq":%d,"sub":%d}}`, seq, sub, seq, sub)
	}
	envs := func(raws ...string) []envelope {
		var out []envelope
		for _, r := range raws {
			var e envelope
			if err := json.Unmarshal([]byte(r), &e); err != nil {
				t.Fatal(err)
			}
			e.frame = eventFrame(e.Event, e.Data)
			out = append(out, e)
		}
		return out
	}
	// Buffered while the join ran: one event the replay holds, one after.
	h.deliver([]byte(presence(4)))
	h.deliver([]byte(chat(5, 1)))
	h.deliver([]byte(presence(6)))
	h.activateWithHistory(s, "r", "c1", 6, &joinHistory{from: position{3, 0}, recovered: 1,
		replay: envs(presence(4), chat(4, 1), presence(5), chat(5, 1)), end: position{5, 1}})
	// Late live copies of replayed events, then new ones.
	h.deliver([]byte(chat(4, 1)))
	h.deliver([]byte(presence(5)))
	h.deliver([]byte(chat(6, 1)))
	h.deliver([]byte(presence(7)))
	var got []string
	for _, f := range s.sess.queue {
		got = append(got, string(f))
	}
	want := []string{`42["presence:event",{"seq":4}]`, `42["chat:message",{"seq":4,"sub":1}]`,
		`42["presence:event",{"seq":5}]`, `42["chat:message",{"seq":5,"sub":1}]`, `42["presence:event",{"seq":6}]`,
		`42["chat:message",{"seq":6,"sub":1}]`, `42["presence:event",{"seq":7}]`}
	if !slices.Equal(got, want) {
		t.Fatalf("the socket got %q; want %q", got, want)
	}
}

// Events of a room's previous life still in flight when a join into the
// room, started over, runs (the room emptied; its seq counts from 1 again)
// are not the joiner's: they arrive before its own join event and are
// dropped, whatever their seq, instead of being delivered and then taking
// the new room's events for a restart. Driven on the hub itself.
func TestOldRoomEventsBeforeOwnJoinDropped(t *testing.T) {
	h := newHub(slog.New(slog.NewTextHandler(newLogWriter(t), nil)))
	s := bareSocket("s")
	h.subscribe(s, "r", modeEach)
	event := func(seq int, typ, conn string) []byte {
		return fmt.Appendf(nil, `{"r":"r","e":"presence:event","q":%d,"t":%q,"c":%q,"d":{"seq":%d,"c":%q}}`,
			seq, typ, conn, seq, conn)
	}
	h.deliver(event(14, "update", "old")) // the old room, published before it emptied
	h.deliver(event(15, "leave", "old"))
	h.deliver(event(1, "join", "c1")) // the joiner's own join into the new room
	h.activateWithHistory(s, "r", "c1", 1, &joinHistory{recovered: -1, end: position{1, 0}})
	h.deliver(event(2, "join", "c2"))
	var got []string
	for _, f := range s.sess.queue {
		got = append(got, string(f))
	}
	want := []string{`42["presence:event",{"seq":1,"c":"c1"}]`, `42["presence:event",{"seq":2,"c":"c2"}]`}
	if !slices.Equal(got, want) {
		t.Fatalf("the socket got %q; want %q", got, want)
	}
	if h.rooms["r"][s] == nil || !h.rooms["r"][s].presence {
		t.Fatal("the joiner's membership is gone: the new room's events were taken for a restart")
	}
}

// Redis losing everything (a restart without persistence, a failover to a
// replica that had nothing): the room starts over with a new epoch, and a
// client that comes back is not replayed from it, however far it went.
func TestRecoverAfterRedisLostItsData(t *testing.T) {
	// Not parallel: it restarts its own Redis.
	rs := ownRedis(t)
	opts := historyOptions(testOptions(t), 30*time.Second, 1000)
	opts.RedisURL = rs.url()
	n := startNode(t, opts)
	b := dial(t, n)
	join(t, b, "r", "bob", nil)
	nextPresence(t, b)
	a, ack, last := awayClient(t, n, b)
	_ = a.Drop()

	rs.kill()
	waitFor(t, 10*time.Second, "the node to notice", func() bool { return !n.srv.subscribed() })
	if err := rs.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the subscription back", func() bool { return n.srv.subscribed() })
	_, err := b.Heartbeat(tctx(t), client.HeartbeatRequest{})
	wantCode(t, err, "not_joined")
	join(t, b, "r", "bob", nil)
	awayTraffic(t, b, 2*int(last.Seq)+4) // past where a was

	a2 := dial(t, n)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &ack.Self, Since: &last})
	notRecovered(t, res, err, "alice", "bob")
	if res.History.Epoch == last.Epoch || res.Self.ConnID == ack.Self.ConnID {
		t.Fatalf("got %+v; want a new connection in a new history", res)
	}
	if e := nextPresence(t, a2); e.Type != "join" || e.UserID != "alice" || e.Seq != res.Snapshot.Seq {
		t.Fatalf("got %+v; want alice's join and nothing before it", e)
	}
	noEvent(t, a2, 100*time.Millisecond)
}
