package main

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"rtm/client"
)

// presenceEventJSON is a presence event as the server's scripts write it.
func presenceEventJSON(typ string, seq, conns int) string {
	s := fmt.Sprintf(`{"type":"%s","roomId":"big","seq":%d,"userId":"big-u%d","connId":"c%d"`, typ, seq, seq, seq)
	if typ != "leave" {
		s += `,"state":{},"epoch":1`
	}
	s += `,"ts":1764950000123`
	if typ == "leave" {
		s += `,"reason":"leave","userLeft":true`
	} else if typ == "join" {
		s += `,"userJoined":true`
	}
	return s + fmt.Sprintf(`,"count":{"connections":%d,"members":%d}}`, conns, conns)
}

func TestCountViewEachAndBatched(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var v countView
	v.fromSnapshot(5, 5, at(0))
	if !v.set || v.seq != 5 || v.conns != 5 || !v.changedAt.Equal(at(0)) {
		t.Fatalf("after the snapshot: %+v", v)
	}
	v.apply(viewUpdate{seq: 5, conns: 5, hasCount: true, delta: 1}, at(1)) // its own join: in the snapshot
	v.apply(viewUpdate{seq: 4, conns: 4, hasCount: true, delta: 1}, at(2)) // older than the snapshot
	if v.seq != 5 || v.conns != 5 || !v.changedAt.Equal(at(0)) || v.gaps != 0 {
		t.Fatalf("events up to the snapshot's seq changed the view: %+v", v)
	}
	v.apply(viewUpdate{seq: 6, conns: 6, hasCount: true, delta: 1}, at(10))
	v.apply(viewUpdate{seq: 7, conns: 6, hasCount: true}, at(20)) // an update: same count
	if v.seq != 7 || v.conns != 6 || !v.changedAt.Equal(at(10)) || v.gaps != 0 {
		t.Fatalf("after a join and an update: %+v", v)
	}
	v.apply(viewUpdate{seq: 9, conns: 5, hasCount: true, delta: -1}, at(30)) // seq 8 missed
	if v.seq != 9 || v.conns != 5 || !v.changedAt.Equal(at(30)) || v.gaps != 1 {
		t.Fatalf("after a gap and a leave: %+v", v)
	}
	// A newer snapshot (a resync) replaces the view; an older one does not.
	v.fromSnapshot(8, 1, at(40))
	if v.conns != 5 {
		t.Fatalf("an older snapshot was applied: %+v", v)
	}
	v.fromSnapshot(12, 7, at(50))
	if v.seq != 12 || v.conns != 7 || !v.changedAt.Equal(at(50)) {
		t.Fatalf("a newer snapshot was not applied: %+v", v)
	}
}

func TestCountViewEventsBeforeSnapshot(t *testing.T) {
	at := time.Unix(2000, 0)
	// Events with a count that arrive before the join's ack was read set
	// the view; the older snapshot is then ignored.
	var v countView
	v.apply(viewUpdate{seq: 3, conns: 3, hasCount: true}, at)
	v.apply(viewUpdate{seq: 4, conns: 4, hasCount: true}, at)
	v.fromSnapshot(3, 3, at)
	if v.seq != 4 || v.conns != 4 || v.gaps != 0 {
		t.Fatalf("got %+v, want seq 4, 4 connections", v)
	}

	// Events without a count wait for the snapshot, then apply in order
	// from its seq on (its own join, seq 3, is in the snapshot).
	var w countView
	for _, u := range []viewUpdate{{seq: 3, delta: 1}, {seq: 4, delta: 1}, {seq: 5, delta: 1}, {seq: 6, delta: -1}, {seq: 7}} {
		w.apply(u, at)
	}
	if w.set || len(w.pending) != 5 {
		t.Fatalf("before the snapshot: %+v", w)
	}
	w.fromSnapshot(3, 3, at)
	if !w.set || w.seq != 7 || w.conns != 4 || len(w.pending) != 0 || w.gaps != 0 {
		t.Fatalf("after the snapshot: %+v, want seq 7, 3+1+1-1 = 4 connections", w)
	}
	w.apply(viewUpdate{seq: 8, delta: -1}, at)
	if w.conns != 3 {
		t.Fatalf("a leave without count: %d connections, want 3", w.conns)
	}
}

func TestCountViewCountMode(t *testing.T) {
	at := time.Unix(3000, 0)
	v := countView{countMode: true}
	v.fromSnapshot(10, 10, at)
	v.apply(viewUpdate{seq: 14, conns: 14, hasCount: true}, at.Add(time.Second))
	v.apply(viewUpdate{seq: 13, conns: 13, hasCount: true}, at.Add(2*time.Second)) // late, older
	v.apply(viewUpdate{seq: 20, conns: 18, hasCount: true}, at.Add(3*time.Second))
	if v.seq != 20 || v.conns != 18 || v.gaps != 0 || !v.changedAt.Equal(at.Add(3*time.Second)) {
		t.Fatalf("got %+v, want seq 20, 18 connections, no gaps (counts skip seqs)", v)
	}
}

func TestScanViewUpdates(t *testing.T) {
	ev := `["presence:event",` + presenceEventJSON("join", 7, 7) + `]`
	batch := `["presence:batch",{"roomId":"big","events":[` + presenceEventJSON("join", 8, 8) + `,` +
		presenceEventJSON("update", 9, 8) + `,` + presenceEventJSON("leave", 10, 7) + `]}]`
	for _, tc := range []struct {
		name, frame string
		kind        int
		want        []viewUpdate
	}{
		{"event", ev, framePresence, []viewUpdate{{seq: 7, conns: 7, hasCount: true, delta: 1}}},
		{"batch", batch, framePresence, []viewUpdate{{seq: 8, conns: 8, hasCount: true, delta: 1},
			{seq: 9, conns: 8, hasCount: true}, {seq: 10, conns: 7, hasCount: true, delta: -1}}},
		{"empty batch", `["presence:batch",{"roomId":"big","events":[]}]`, framePresence, nil},
		{"count", `["presence:count",{"roomId":"big","seq":42,"count":{"connections":40,"members":39}}]`, framePresence,
			[]viewUpdate{{seq: 42, conns: 40, hasCount: true}}},
		{"null count", `["presence:count",{"roomId":"big","seq":42,"count":null}]`, framePresence, nil},
		{"event without count", `["presence:event",{"type":"leave","roomId":"big","seq":3,"userId":"u","connId":"c","ts":1}]`,
			framePresence, []viewUpdate{{seq: 3, delta: -1}}},
		{"resync", `["presence:resync",{"roomId":"big","seq":9}]`, frameResync, nil},
		{"chat", `["chat:message",{"id":"1","roomId":"big","text":"\"seq\":1","ts":1}]`, frameOther, nil},
	} {
		got, kind := scanViewUpdates([]byte(tc.frame), nil)
		if kind != tc.kind || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v kind %d, want %v kind %d", tc.name, got, kind, tc.want, tc.kind)
		}
	}

	// A batch applied to a view set by a snapshot.
	var v countView
	v.fromSnapshot(7, 7, time.Unix(0, 0))
	ups, _ := scanViewUpdates([]byte(batch), nil)
	for _, u := range ups {
		v.apply(u, time.Unix(1, 0))
	}
	if v.seq != 10 || v.conns != 7 || v.gaps != 0 {
		t.Fatalf("after the batch: %+v, want seq 10, 7 connections", v)
	}
}

func TestParseSnapshotAck(t *testing.T) {
	conn := func(i int) string {
		return fmt.Sprintf(`{"connId":"c%d","userId":"big-u%d","state":{},"epoch":1,"lastSeenMs":1764950000000}`, i, i)
	}
	full := `{"ok":true,"self":{"connId":"c3","epoch":1},"snapshot":{"roomId":"big","seq":12,"members":["big-u1","big-u2","big-u3"],"connections":[` +
		conn(1) + `,` + conn(2) + `,` + conn(3) + `]}}`
	count := `{"ok":true,"self":{"connId":"c3","epoch":1},"snapshot":{"roomId":"big","seq":40,"count":{"connections":38,"members":37}}}`
	page := `{"ok":true,"self":{"connId":"c3","epoch":1},"snapshot":{"roomId":"big","seq":41,"count":{"connections":500,"members":500},"members":["big-u1"],"connections":[` +
		conn(1) + `],"next":"c1"}}`
	sync := `{"ok":true,"snapshot":{"roomId":"big","seq":2,"members":[],"connections":[]}}`
	for _, tc := range []struct {
		name, raw  string
		seq, conns int64
	}{{"full", full, 12, 3}, {"count", count, 40, 38}, {"page", page, 41, 500}, {"empty sync", sync, 2, 0}} {
		seq, conns, err := parseSnapshotAck([]byte(tc.raw))
		if err != nil || seq != tc.seq || conns != tc.conns {
			t.Errorf("%s: %d, %d, %v; want %d, %d", tc.name, seq, conns, err, tc.seq, tc.conns)
		}
	}
	if hasSnapshotCount([]byte(full)) || !hasSnapshotCount([]byte(count)) || !hasSnapshotCount([]byte(page)) {
		t.Error("hasSnapshotCount: a full snapshot has no count, count and page snapshots have one")
	}

	_, _, err := parseSnapshotAck([]byte(`{"ok":false,"error":{"code":"rate_limited","message":"slow down"}}`))
	var ae *client.AckError
	if !errors.As(err, &ae) || ae.Code != "rate_limited" || errCode(err) != "rate_limited" {
		t.Errorf("refusal: %v, want the ack's error rate_limited", err)
	}
	for _, raw := range []string{`{"ok":true,"self":{}}`, `nonsense`, `{"ok":false}`, `{"ok":true,"snapshot":{"roomId":"x"}}`} {
		if _, _, err := parseSnapshotAck([]byte(raw)); !errors.Is(err, errBadAck) {
			t.Errorf("%s: %v, want errBadAck", raw, err)
		}
	}
}

func TestConvergence(t *testing.T) {
	last := time.Unix(5000, 0)
	after := func(ms int) time.Time { return last.Add(time.Duration(ms) * time.Millisecond) }
	var views []viewResult
	// 100 members converged 1..100 ms after the last join, one before it.
	for i := 1; i <= 100; i++ {
		views = append(views, viewResult{set: true, conns: 300, changedAt: after(i)})
	}
	views = append(views, viewResult{set: true, conns: 300, changedAt: after(-50)},
		viewResult{set: true, conns: 298, changedAt: after(3)}, viewResult{set: true, conns: 302, changedAt: after(3)},
		viewResult{})
	f := convergence(views, 300, last)
	if f.Observed != 104 || f.Converged != 101 || f.NotConverged != 3 || f.NoView != 1 || f.WrongMin != 298 || f.WrongMax != 302 {
		t.Fatalf("counts: %+v", f)
	}
	// Sorted: 0, 1, 2, ..., 100 ms: the 51st is 50 ms, the 100th is 99 ms.
	if f.P50Ms != 50 || f.P99Ms != 99 || f.MaxMs != 100 {
		t.Fatalf("p50 %v p99 %v max %v, want 50, 99, 100", f.P50Ms, f.P99Ms, f.MaxMs)
	}
	if e := convergence(nil, 0, last); e.Converged != 0 || e.MaxMs != 0 || e.WrongMin != -1 {
		t.Fatalf("no views: %+v", e)
	}
}

func TestQuantileAndRatio(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0, time.Millisecond}, {0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond},
		{0.999, 999 * time.Millisecond}, {1, time.Second}} {
		if got := quantileDur(ds, tc.q); got != tc.want {
			t.Errorf("quantile %v = %v, want %v", tc.q, got, tc.want)
		}
	}
	if quantileDur(nil, 0.5) != 0 || quantileDur([]time.Duration{7}, 0.99) != 7 {
		t.Error("quantile of an empty or one-value list")
	}
	if ratio(12, 4) != 3 || ratio(5, 0) != 0 || ratio(5, -1) != 0 {
		t.Error("ratio")
	}

	// The report's ratio is p99 during the ramp over p99 in the baseline,
	// from the histograms of the other rooms' heartbeats.
	var base, ramp Histogram
	for i := range 1000 {
		base.Record(time.Duration(1000+i) * time.Microsecond)   // 1..2 ms
		ramp.Record(time.Duration(4000+4*i) * time.Microsecond) // 4..8 ms
	}
	r := ratio(ramp.Summarize().P99, base.Summarize().P99)
	if math.Abs(r-4) > 0.1 {
		t.Errorf("p99 ratio %.3f, want about 4 (7.96 ms / 1.99 ms)", r)
	}
}

func TestOldStyleMember(t *testing.T) {
	count := func(n int, share float64) (old int, pattern string) {
		var b strings.Builder
		for i := range n {
			if oldStyleMember(i, share) {
				old++
				b.WriteByte('o')
			} else {
				b.WriteByte('n')
			}
		}
		return old, b.String()
	}
	if old, _ := count(1000, 0); old != 0 {
		t.Errorf("share 0: %d old-style", old)
	}
	if old, _ := count(1000, 1); old != 1000 {
		t.Errorf("share 1: %d old-style", old)
	}
	if old, p := count(8, 0.5); old != 4 || p != "nononono" {
		t.Errorf("share 0.5: %d old-style, %s", old, p)
	}
	if old, p := count(8, 0.25); old != 2 || p != "nnnonnno" {
		t.Errorf("share 0.25: %d old-style, %s", old, p)
	}
	if old, _ := count(3000, 0.3); old != 900 {
		t.Errorf("share 0.3 of 3000: %d old-style, want 900", old)
	}
}

func TestNodeFigures(t *testing.T) {
	t0 := time.Unix(100, 0)
	// Baseline: 0.5 CPU s in 10 s (5 %); ramp and settle: 3 CPU s in 20 s,
	// of which 1 s is the baseline's rate.
	base := &serverSample{At: t0, M: map[string]float64{"process_cpu_seconds_total": 9.5}}
	before := &serverSample{At: t0.Add(10 * time.Second), M: map[string]float64{"process_cpu_seconds_total": 10,
		"process_resident_memory_bytes": 100 << 20, "rtm_sockets": 100}}
	after := &serverSample{At: t0.Add(30 * time.Second), M: map[string]float64{"process_cpu_seconds_total": 13,
		"process_resident_memory_bytes": 150 << 20, "rtm_sockets": 5100}}
	n := nodeFigures("http://127.0.0.1:1", base, before, after, 5000, 10000, 20_000_000)
	if n.CPUSeconds != 3 || n.CPUMicrosPerJoin != 300 || n.CPUMicrosPerLocalJoin != 600 {
		t.Errorf("CPU: %+v", n)
	}
	if math.Abs(n.BaselineCPUPercent-5) > 1e-9 || math.Abs(n.CPUMicrosPerJoinNet-200) > 1e-9 {
		t.Errorf("baseline %.3f %%, CPU per join above it %.3f us; want 5 %%, 200 us", n.BaselineCPUPercent, n.CPUMicrosPerJoinNet)
	}
	if n.SocketsAdded != 5000 || n.RSSPerConn != float64(50<<20)/5000 || n.BytesPerJoin != 2000 {
		t.Errorf("RSS and bytes: %+v", n)
	}
	// A node that does not report its sockets: the members joined there.
	delete(after.M, "rtm_sockets")
	delete(before.M, "rtm_sockets")
	if n := nodeFigures("x", nil, before, after, 1000, 2000, 0); n.RSSPerConn != float64(50<<20)/1000 || n.CPUMicrosPerJoinNet != 0 {
		t.Errorf("RSS per connection without rtm_sockets: %v", n.RSSPerConn)
	}
	if n := nodeFigures("x", base, nil, after, 1000, 2000, 4000); n.CPUSeconds != 0 || n.BytesPerJoin != 2 {
		t.Errorf("without a sample before: %+v", n)
	}
}

func TestBigroomFlags(t *testing.T) {
	base := []string{"-scenario", "bigroom", "-target", "http://127.0.0.1:3601,http://127.0.0.1:3602"}
	c, err := parseFlags(append(base, "-events", "batched", "-snapshot", "page", "-page-size", "50", "-old-share", "0.5"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.targets) != 2 || c.joinRate != 500 || c.otherRooms != 100 || c.otherUsers != 2 || c.otherHBEvery != time.Second ||
		c.baseline != 10*time.Second || c.convergeWithin != 10*time.Second || c.settle != 3*time.Second || c.hbInterval != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if c.bigEvents != "batched" || c.bigSnapshot != "page" || c.pageSize != 50 || c.oldShare != 0.5 {
		t.Errorf("options: %+v", c)
	}
	for _, bad := range [][]string{{"-events", "all"}, {"-snapshot", "none"}, {"-page-size", "1001"}, {"-old-share", "1.5"},
		{"-join-rate", "0"}, {"-converge-within", "0s"}, {"-other-users", "0"}, {"-baseline", "-1s"}} {
		if _, err := parseFlags(append(base, bad...)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// Old-style: the options are not sent at all.
	c, err = parseFlags(append(base, "-events", "", "-snapshot", ""))
	if err != nil {
		t.Fatal(err)
	}
	b := newBigRun(c)
	req := b.joinRequest(b.members[0])
	if req.Events != "" || req.Snapshot != "" || req.PageSize != 0 || b.members[1].node != 1 || b.members[2].node != 0 {
		t.Errorf("old-style member 0: %+v, nodes %d %d", req, b.members[1].node, b.members[2].node)
	}

	// A mixed run: each node gets its share of old-style members; the
	// others send the options.
	c, err = parseFlags(append(base, "-members", "1000", "-events", "count", "-snapshot", "page", "-page-size", "20", "-old-share", "0.5"))
	if err != nil {
		t.Fatal(err)
	}
	b = newBigRun(c)
	old := [2]int{}
	for _, m := range b.members {
		req := b.joinRequest(m)
		switch {
		case !m.optedIn():
			old[m.node]++
			if req.Events != "" || req.Snapshot != "" || req.PageSize != 0 || !m.listens {
				t.Fatalf("old-style member %d sends %+v", m.idx, req)
			}
		case req.Events != "count" || req.Snapshot != "page" || req.PageSize != 20 || !m.view.countMode:
			t.Fatalf("opted-in member %d sends %+v", m.idx, req)
		}
	}
	if old != [2]int{250, 250} {
		t.Errorf("old-style members per node %v, want 250 each", old)
	}
}
