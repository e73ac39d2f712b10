package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	"rtm/client"
)

// Members may ask for their room's events batched per tick, as a count per
// tick, or not at all, and for a counts-only snapshot. The batched member
// gets exactly the events an ordinary member gets from its own join on, in
// fewer messages; the counting one gets fewer counts than events, the last
// one current; the silent one gets no presence event but is seen by all.
func TestPresenceEventModes(t *testing.T) { backends(t, testPresenceEventModes) }

func testPresenceEventModes(t *testing.T, opts ServerOptions) {
	opts.Presence.BatchInterval = 300 * time.Millisecond
	n1, n2 := startNode(t, opts), startNode(t, opts)
	each, batched := dial(t, n1), dial(t, n2)
	counted, silent, actor := dial(t, n1), dial(t, n2), dial(t, n1)
	ctx := tctx(t)
	joinAs := func(c *client.Conn, user, events, snapshot string) *client.JoinAck {
		t.Helper()
		ack, err := c.Join(ctx, client.JoinRequest{RoomID: "big", UserID: user, Events: events, Snapshot: snapshot})
		if err != nil {
			t.Fatalf("join %s (%s): %v", user, events, err)
		}
		return ack
	}
	joinAs(each, "e", "", "")
	bAck := joinAs(batched, "b", "batched", "")
	cAck := joinAs(counted, "c", "count", "count")
	if cAck.Snapshot.Count == nil || cAck.Snapshot.Count.Connections != 3 || cAck.Snapshot.Connections != nil ||
		cAck.Snapshot.Seq != 3 {
		t.Fatalf("counts-only snapshot: %+v; want seq 3, 3 connections and no lists", cAck.Snapshot)
	}
	sAck := joinAs(silent, "s", "none", "")
	if len(sAck.Snapshot.Connections) != 4 {
		t.Fatalf("the silent member's snapshot lists %d connections; want 4", len(sAck.Snapshot.Connections))
	}
	joinAs(actor, "a", "", "")
	for i := 0; i < 5; i++ {
		if _, err := actor.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := actor.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	const last = 11 // e, b, c, s, a joined (1-5), 5 updates (6-10), a left (11)

	var want []int64
	for seq := int64(0); seq < last; {
		e := nextPresence(t, each)
		seq = e.Seq
		if seq >= bAck.Snapshot.Seq {
			want = append(want, seq)
		}
	}
	var got []int64
	batches := 0
	for len(got) == 0 || got[len(got)-1] < last {
		e := nextEvent(t, batched, 5*time.Second)
		if e.Name == client.EventPresence {
			t.Fatalf("the batched member got a single presence:event")
		}
		if e.Name != "presence:batch" {
			continue
		}
		b, err := client.ParsePresenceBatch(e)
		if err != nil || b.RoomID != "big" || len(b.Events) == 0 {
			t.Fatalf("batch %+v, %v", b, err)
		}
		batches++
		for _, ev := range b.Events {
			got = append(got, ev.Seq)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the batched member got seqs %v; want %v (what an ordinary member got since its join)", got, want)
	}
	if batches >= len(got) {
		t.Fatalf("%d batches for %d events: nothing was batched", batches, len(got))
	}

	counts := 0
	for {
		e := nextEvent(t, counted, 5*time.Second)
		if e.Name == client.EventPresence || e.Name == "presence:batch" {
			t.Fatalf("the counting member got %s", e.Name)
		}
		if e.Name != "presence:count" {
			continue
		}
		c, err := client.ParsePresenceCount(e)
		if err != nil || c.RoomID != "big" {
			t.Fatalf("count %+v, %v", c, err)
		}
		counts++
		if c.Seq == last {
			if c.Count.Connections != 4 || c.Count.Members != 4 {
				t.Fatalf("the last count is %+v; want 4 connections of 4 members", c.Count)
			}
			break
		}
	}
	if counts >= last-3 {
		t.Fatalf("%d counts for %d events", counts, last-3)
	}
	// The silent member heard nothing of the room, and is still in it.
	if _, err := silent.Heartbeat(ctx, client.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	snap, err := silent.Sync(ctx)
	if err != nil || len(snap.Connections) != 4 {
		t.Fatalf("sync: %+v, %v", snap, err)
	}
	for {
		select {
		case e := <-silent.Events():
			if e.Name == client.EventPresence || e.Name == "presence:batch" || e.Name == "presence:count" {
				t.Fatalf("the silent member got %s %s", e.Name, e.Args)
			}
			continue
		default:
		}
		break
	}
}

// Bad event and snapshot options are refused.
func TestPresenceModeOptionsRefused(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	c := dial(t, n)
	ctx := tctx(t)
	_, err := c.Join(ctx, client.JoinRequest{RoomID: "r", UserID: "u", Events: "sometimes"})
	wantCode(t, err, "invalid_payload")
	_, err = c.Join(ctx, client.JoinRequest{RoomID: "r", UserID: "u", Snapshot: "half"})
	wantCode(t, err, "invalid_payload")
	join(t, c, "r", "u", nil)
	raw, err := c.Call(ctx, "presence:sync", map[string]any{"snapshot": "count"})
	if err != nil || string(raw) != `{"ok":true,"snapshot":{"roomId":"r","seq":1,"count":{"connections":1,"members":1}}}` {
		t.Fatalf("sync with a counts-only snapshot: %s, %v", raw, err)
	}
}

// A room's connections page in byte order of their connIds, each page tied
// to the seq it was read at; the pages together list every connection once.
// A full snapshot of a room over the cap is its first page, marked
// truncated. A room whose ids index is missing (made before it existed)
// gets it at its first page.
func TestMemberPages(t *testing.T) { backends(t, testMemberPages) }

func testMemberPages(t *testing.T, opts ServerOptions) {
	opts.Presence.MaxSnapshot = 20
	n := startNode(t, opts)
	ctx := tctx(t)
	var all []string
	var leaver *client.Conn
	for i := 0; i < 26; i++ {
		c := dial(t, n)
		if i == 25 {
			leaver = c
		}
		ack, err := c.Join(ctx, client.JoinRequest{RoomID: "pages", UserID: fmt.Sprint("u", i%10), Events: "none",
			Snapshot: "count"})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ack.Self.ConnID)
	}
	// One leaves: the pages must not list it.
	if _, err := leaver.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	all = all[:25]
	slices.Sort(all)

	reader := dial(t, n)
	ack, err := reader.Join(ctx, client.JoinRequest{RoomID: "pages", UserID: "reader", Snapshot: "page", PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	all = slices.Insert(all, sort.SearchStrings(all, ack.Self.ConnID), ack.Self.ConnID)
	var got []string
	pg := &ack.Snapshot
	for pages := 1; ; pages++ {
		if pg.Count == nil || pg.Count.Connections != 26 || pg.Count.Members != 11 || pg.Seq != 28 {
			t.Fatalf("page %d: count %+v seq %d; want 26 connections of 11 members at seq 28", pages, pg.Count, pg.Seq)
		}
		users := map[string]bool{}
		for _, c := range pg.Connections {
			got = append(got, c.ConnID)
			users[c.UserID] = true
		}
		if len(pg.Members) != len(users) {
			t.Fatalf("page %d lists members %v for users %v", pages, pg.Members, users)
		}
		if pg.Next == nil {
			if pages != 3 || len(pg.Connections) != 6 {
				t.Fatalf("the last page is page %d with %d connections; want page 3 with 6", pages, len(pg.Connections))
			}
			break
		}
		if len(pg.Connections) != 10 || *pg.Next != pg.Connections[9].ConnID {
			t.Fatalf("page %d: %d connections, next %q", pages, len(pg.Connections), *pg.Next)
		}
		if pg, err = reader.Members(ctx, *pg.Next, 10); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, all) {
		t.Fatalf("the pages listed %v; want every connection once, in order: %v", got, all)
	}

	// Over the cap, a full snapshot is the first page, marked truncated.
	snap, err := reader.Sync(ctx)
	if err != nil || !snap.Truncated || len(snap.Connections) != 20 || snap.Next == nil || *snap.Next != all[19] {
		t.Fatalf("full snapshot over the cap: %+v, %v; want the first 20, truncated", snap, err)
	}

	// A room without its ids index gets it back at the first page.
	p := n.srv.presence
	c, err := n.srv.pool.GetContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do("DEL", p.roomTag("pages")+"ids")
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	pg, err = reader.Members(ctx, "", 1000)
	if err != nil || len(pg.Connections) != 26 || pg.Next != nil {
		t.Fatalf("page after the index was lost: %+v, %v", pg, err)
	}
	for _, bad := range []string{`{"limit":0}`, `{"limit":1001}`, `{"after":7}`, `{"after":"not-a-conn-id"}`, `[]`} {
		if code := ackCode(callAck(t, reader, "presence:members", json.RawMessage(bad))); code != "invalid_payload" {
			t.Errorf("presence:members %v: %s; want invalid_payload", bad, code)
		}
	}
}

// A node sends the counted members of a big room a count only every few
// ticks (at most about countFramesPerTick frames a tick, at least every
// maxCountTicks), and always the last one; a small room's members get one
// every tick that changed it. Driven on the hub itself.
func TestBigRoomCountsSpread(t *testing.T) {
	h := newHub(slog.New(slog.NewTextHandler(newLogWriter(t), nil)))
	h.maxCountTicks = 5
	join := func(room string, n int) []*Socket {
		socks := make([]*Socket, n)
		for i := range socks {
			socks[i] = bareSocket(fmt.Sprintf("%s-%d", room, i))
			h.subscribe(socks[i], room, modeCount)
			h.activate(socks[i], room, "c", 1)
		}
		return socks
	}
	big, small := join("big", 2001), join("small", 10) // big: every 3 ticks, 667 a tick
	event := func(room string, seq int) {
		h.deliver(fmt.Appendf(nil, `{"r":%q,"e":"presence:event","q":%d,"t":"join","c":"x%d","d":{"count":{"connections":%d,"members":%d}}}`,
			room, seq, seq, seq, seq))
	}
	lastSeq := func(s *Socket) (n int, seq int) {
		for _, f := range s.sess.queue {
			var c struct {
				Seq int `json:"seq"`
			}
			body := f[len(`42["presence:count",`) : len(f)-1]
			if err := json.Unmarshal(body, &c); err != nil {
				t.Fatalf("frame %q: %v", f, err)
			}
			n, seq = n+1, c.Seq
		}
		return n, seq
	}
	sent := make(map[*Socket][]int) // the ticks at which each big-room member got a count
	for tick := 1; tick <= 9; tick++ {
		event("big", tick+1)
		event("small", tick+1)
		h.flush()
		frames := 0
		for _, s := range big {
			if n, _ := lastSeq(s); n > len(sent[s]) {
				sent[s] = append(sent[s], tick)
				frames++
			}
		}
		if frames > countFramesPerTick {
			t.Fatalf("tick %d: %d count frames; want at most %d", tick, frames, countFramesPerTick)
		}
		for _, s := range small {
			if n, seq := lastSeq(s); n != tick || seq != tick+1 {
				t.Fatalf("tick %d: a small room's member has %d counts, the last of seq %d; want %d and %d", tick, n, seq, tick, tick+1)
			}
		}
	}
	for s, ticks := range sent {
		for i := 1; i < len(ticks); i++ {
			if ticks[i]-ticks[i-1] != 3 {
				t.Fatalf("member %s got counts at ticks %v: want them 3 ticks apart", s.id, ticks)
			}
		}
		if len(ticks) < 3 {
			t.Fatalf("member %s got counts at ticks %v over 9 ticks of changes: want one at least every 3", s.id, ticks)
		}
	}
	// Once the room is quiet, every member gets the last count within the
	// spread, and nothing more.
	for range 3 {
		h.flush()
	}
	for _, s := range big {
		if _, seq := lastSeq(s); seq != 10 {
			t.Fatalf("member %s's last count is of seq %d; want 10", s.id, seq)
		}
	}
	if len(h.dirty) != 0 {
		t.Fatalf("rooms still dirty after the last counts: %v", h.dirty)
	}
	// The spread is capped: a huge room still counts every maxCountTicks.
	if got := h.countEvery(100 * countFramesPerTick); got != 5 {
		t.Fatalf("countEvery of a huge room = %d; want the cap 5", got)
	}
}
