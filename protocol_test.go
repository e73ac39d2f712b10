package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"rtm/client"
)

// callAck sends event with a raw JSON payload (or none) and decodes the ack.
func callAck(t *testing.T, c *client.Conn, event string, payload ...json.RawMessage) map[string]any {
	t.Helper()
	args := make([]any, len(payload))
	for i, p := range payload {
		args[i] = p
	}
	raw, err := c.Call(tctx(t), event, args...)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	var ack map[string]any
	if err := json.Unmarshal(raw, &ack); err != nil {
		t.Fatalf("%s: ack %s: %v", event, raw, err)
	}
	return ack
}

func ackCode(ack map[string]any) string {
	if ack["ok"] == true {
		return "ok"
	}
	e, _ := ack["error"].(map[string]any)
	code, _ := e["code"].(string)
	if msg, _ := e["message"].(string); msg == "" {
		return code + " (no message)"
	}
	return code
}

// Bad input gets a clear error ack; the socket, the node and everyone's data
// survive it, and nothing is left in Redis.
func TestBadInput(t *testing.T) { backends(t, testBadInput) }

func testBadInput(t *testing.T, opts ServerOptions) {
	opts.Rates = RateLimits{Other: Rate{PerSecond: 1000, Burst: 1000}, Heartbeat: Rate{PerSecond: 1000, Burst: 1000},
		Patch: Rate{PerSecond: 1000, Burst: 1000}, Chat: Rate{PerSecond: 1000, Burst: 1000}}
	n := startNode(t, opts)
	c, other := dial(t, n), dial(t, n)
	join(t, other, "r", "other", map[string]any{"keep": true})

	long := strings.Repeat("x", 129)
	big := `{"k":"` + strings.Repeat("a", 4096) + `"}`
	notJoined := []struct {
		name, event, payload, want string
	}{
		{"heartbeat before join", "presence:heartbeat", `{}`, "not_joined"},
		{"sync before join", "presence:sync", ``, "not_joined"},
		{"chat before join", "chat:message", `{"text":"hi"}`, "not_joined"},
		{"leave before join", "presence:leave", ``, "ok"},
		{"leave {} before join", "presence:leave", `{}`, "ok"},
		{"leave number before join", "presence:leave", `42`, "invalid_payload"},
		{"sync string before join", "presence:sync", `"r"`, "invalid_payload"},
	}
	joinCases := []struct {
		name, payload, want string
	}{
		{"string payload", `"room"`, "invalid_payload"},
		{"array payload", `["r","u"]`, "invalid_payload"},
		{"number payload", `42`, "invalid_payload"},
		{"no payload", ``, "invalid_payload"},
		{"missing roomId", `{"userId":"u"}`, "invalid_payload"},
		{"missing userId", `{"roomId":"r"}`, "invalid_payload"},
		{"numeric roomId", `{"roomId":7,"userId":"u"}`, "invalid_payload"},
		{"empty roomId", `{"roomId":"","userId":"u"}`, "invalid_payload"},
		{"129-byte roomId", `{"roomId":"` + long + `","userId":"u"}`, "invalid_payload"},
		{"brace in roomId", `{"roomId":"a{b}","userId":"u"}`, "invalid_payload"},
		{"control char in userId", `{"roomId":"r","userId":"a\u0007b"}`, "invalid_payload"},
		{"DEL in userId", `{"roomId":"r","userId":"a\u007fb"}`, "invalid_payload"},
		{"state array", `{"roomId":"r","userId":"u","state":[1]}`, "invalid_payload"},
		{"state scalar", `{"roomId":"r","userId":"u","state":"x"}`, "invalid_payload"},
		{"state too large", `{"roomId":"r","userId":"u","state":` + big + `}`, "payload_too_large"},
		{"invalid beats too large", `{"roomId":"","userId":"u","state":` + big + `}`, "invalid_payload"},
		{"resume not object", `{"roomId":"r","userId":"u","resume":"x"}`, "invalid_payload"},
		{"resume without epoch", `{"roomId":"r","userId":"u","resume":{"connId":"abc"}}`, "invalid_payload"},
		{"resume epoch string", `{"roomId":"r","userId":"u","resume":{"connId":"abc","epoch":"1"}}`, "invalid_payload"},
	}
	for _, tc := range notJoined {
		var ack map[string]any
		if tc.payload == "" {
			ack = callAck(t, c, tc.event)
		} else {
			ack = callAck(t, c, tc.event, json.RawMessage(tc.payload))
		}
		if got := ackCode(ack); got != tc.want {
			t.Errorf("%s: got %s; want %s", tc.name, got, tc.want)
		}
	}
	for _, tc := range joinCases {
		var ack map[string]any
		if tc.payload == "" {
			ack = callAck(t, c, "presence:join")
		} else {
			ack = callAck(t, c, "presence:join", json.RawMessage(tc.payload))
		}
		if got := ackCode(ack); got != tc.want {
			t.Errorf("join %s: got %s; want %s", tc.name, got, tc.want)
		}
	}
	if keys := keysWithPrefix(t, opts.RedisURL, testRoomTag(opts.Presence.Prefix, "r")+"c:"); len(keys) != 1 {
		t.Fatalf("after refused joins: got connection keys %v; want only other's", keys)
	}

	// The socket survived all that and can join.
	join(t, c, "r", "u", nil)
	joined := []struct {
		name, event, payload, want string
	}{
		{"epoch string", "presence:heartbeat", `{"epoch":"1"}`, "invalid_payload"},
		{"epoch negative", "presence:heartbeat", `{"epoch":-1}`, "invalid_payload"},
		{"epoch fraction", "presence:heartbeat", `{"epoch":1.5}`, "invalid_payload"},
		{"patch array", "presence:heartbeat", `{"patchState":[1]}`, "invalid_payload"},
		{"patch too large", "presence:heartbeat", `{"patchState":` + big + `}`, "payload_too_large"},
		{"heartbeat array", "presence:heartbeat", `[]`, "invalid_payload"},
		{"heartbeat null", "presence:heartbeat", `null`, "ok"},
		{"patch null", "presence:heartbeat", `{"patchState":null,"epoch":null}`, "ok"},
		{"chat empty", "chat:message", `{"text":""}`, "invalid_payload"},
		{"chat number", "chat:message", `{"text":5}`, "invalid_payload"},
		{"chat missing", "chat:message", `{}`, "invalid_payload"},
		{"chat 2001 chars", "chat:message", `{"text":"` + strings.Repeat("é", 2001) + `"}`, "invalid_payload"},
		{"chat 2000 chars", "chat:message", `{"text":"` + strings.Repeat("😀", 2000) + `"}`, "ok"},
		{"second join", "presence:join", `{"roomId":"r2","userId":"u"}`, "already_joined"},
		{"sync", "presence:sync", `{}`, "ok"},
		{"sync null", "presence:sync", `null`, "ok"},
		{"sync number", "presence:sync", `42`, "invalid_payload"},
		{"sync array", "presence:sync", `[]`, "invalid_payload"},
		{"leave number", "presence:leave", `42`, "invalid_payload"},
		{"leave string", "presence:leave", `"r"`, "invalid_payload"},
		{"leave array", "presence:leave", `[{}]`, "invalid_payload"},
	}
	for _, tc := range joined {
		ack := callAck(t, c, tc.event, json.RawMessage(tc.payload))
		if got := ackCode(ack); got != tc.want {
			t.Errorf("%s: got %s (%v); want %s", tc.name, got, ack, tc.want)
		}
	}
	snap, err := other.Sync(tctx(t))
	if err != nil || len(snap.Connections) != 2 {
		t.Fatalf("got %+v, %v", snap, err)
	}
	for _, conn := range snap.Connections {
		if conn.UserID == "other" && string(conn.State) != `{"keep":true}` {
			t.Fatalf("other's state changed: %s", conn.State)
		}
	}
	// Everyone leaves: nothing remains.
	for _, x := range []*client.Conn{c, other} {
		if _, err := x.Leave(tctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if keys := keysWithPrefix(t, opts.RedisURL, opts.Presence.Prefix); len(keys) != 0 {
		t.Fatalf("keys left behind: %v", keys)
	}
}

// An event sent without an acknowledgement callback is processed all the same.
func TestEventWithoutAck(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	c, obs := dial(t, n), dial(t, n)
	join(t, obs, "r", "obs", nil)
	nextPresence(t, obs)
	if err := c.Emit("presence:join", map[string]any{"roomId": "r", "userId": "silent"}); err != nil {
		t.Fatal(err)
	}
	if e := nextPresence(t, obs); e.Type != "join" || e.UserID != "silent" {
		t.Fatalf("got %+v", e)
	}
	if err := c.Emit("presence:leave"); err != nil {
		t.Fatal(err)
	}
	if e := nextPresence(t, obs); e.Type != "leave" || e.UserID != "silent" {
		t.Fatalf("got %+v", e)
	}
}

// Rate limits answer rate_limited, first among the error codes, and the
// socket survives.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	// A refill period of 2 s: the five calls below must all land within it,
	// even on a loaded machine.
	opts.Rates = RateLimits{Heartbeat: Rate{PerSecond: 0.5, Burst: 3}, Patch: Rate{PerSecond: 1, Burst: 1},
		Chat: Rate{PerSecond: 1, Burst: 1}, Other: Rate{PerSecond: 100, Burst: 100}}
	n := startNode(t, opts)
	c := dial(t, n)
	join(t, c, "r", "u", nil)
	start := time.Now() // before the bucket's first use
	var codes []string
	for i := 0; i < 5; i++ {
		codes = append(codes, ackCode(callAck(t, c, "presence:heartbeat", json.RawMessage(`{}`))))
	}
	if strings.Join(codes, ",") != "ok,ok,ok,rate_limited,rate_limited" {
		t.Fatalf("got %v", codes)
	}
	// rate_limited wins over invalid_payload.
	if got := ackCode(callAck(t, c, "presence:heartbeat", json.RawMessage(`{"epoch":"bad"}`))); got != "rate_limited" {
		t.Fatalf("got %s; want rate_limited", got)
	}
	// Patches and chat have buckets of their own.
	if got := ackCode(callAck(t, c, "presence:heartbeat", json.RawMessage(`{"patchState":{"a":1}}`))); got != "ok" {
		t.Fatalf("patch: got %s", got)
	}
	if got := ackCode(callAck(t, c, "presence:heartbeat", json.RawMessage(`{"patchState":{"a":2}}`))); got != "rate_limited" {
		t.Fatalf("second patch: got %s", got)
	}
	if got := ackCode(callAck(t, c, "chat:message", json.RawMessage(`{"text":"a"}`))); got != "ok" {
		t.Fatalf("chat: got %s", got)
	}
	if got := ackCode(callAck(t, c, "chat:message", json.RawMessage(`{"text":"b"}`))); got != "rate_limited" {
		t.Fatalf("chat: got %s", got)
	}
	// Three tokens spent from a full bucket of three: the next one is a
	// whole refill period (2 s at 0.5/s) after the first use, not sooner.
	// Refused calls take nothing, so polling does not delay it.
	period := time.Duration(float64(time.Second) / opts.Rates.Heartbeat.PerSecond)
	// Tried every period/20: refusals count as strikes (maxStrikes).
	waitForEvery(t, 5*period, period/20, "a refilled heartbeat token", func() bool {
		return ackCode(callAck(t, c, "presence:heartbeat", json.RawMessage(`{}`))) == "ok"
	})
	if d := time.Since(start); d < period {
		t.Fatalf("a token came back after %v; want at least %v", d, period)
	}
}

// U+2028 and U+2029 arrive as they were sent, in ids, state keys and values
// and chat, and never become U+201C/U+201D (another user's id); a lone
// surrogate escape anywhere is invalid_payload, while pairs pass.
func TestUnicodeNotRewritten(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	a, b, c := dial(t, n), dial(t, n), dial(t, n)
	const room, ls, ps = "r\u2028\u2029", "\u2028", "\u2029"
	ackA := join(t, a, room, "bob"+ls, map[string]any{"k" + ls: "v" + ps, ps: []any{ls}})
	join(t, b, room, "bob\u201c", nil)
	ackC := join(t, c, room, "bob"+ps, nil)
	snap := ackC.Snapshot
	members := slices.Sorted(slices.Values(snap.Members))
	if snap.RoomID != room || !slices.Equal(members, []string{"bob\u201c", "bob" + ls, "bob" + ps}) {
		t.Fatalf("got room %q members %q; want three distinct users in %q", snap.RoomID, members, room)
	}
	for _, conn := range snap.Connections {
		var st map[string]any
		if conn.ConnID == ackA.Self.ConnID && (json.Unmarshal(conn.State, &st) != nil ||
			len(st) != 2 || st["k"+ls] != "v"+ps || fmt.Sprint(st[ps]) != "["+ls+"]") {
			t.Fatalf("got state %q", conn.State)
		}
	}
	text := "a" + ls + "b" + ps + "c"
	if _, _, err := a.Chat(tctx(t), text); err != nil {
		t.Fatal(err)
	}
	for {
		ev := nextEvent(t, b, 5*time.Second)
		if ev.Name != "chat:message" {
			continue
		}
		m, err := client.ParseChatMessage(ev)
		if err != nil || m.Text != text || m.UserID != "bob"+ls || m.RoomID != room {
			t.Fatalf("got %+v, %v; want %q from %q", m, err, text, "bob"+ls)
		}
		break
	}

	// Lone surrogates, on a socket of its own (so every refusal is seen).
	d := dial(t, n)
	for name, tc := range map[string]struct{ event, payload, want string }{
		"high in roomId":        {"presence:join", `{"roomId":"\ud800","userId":"u"}`, "invalid_payload"},
		"other high in roomId":  {"presence:join", `{"roomId":"\udbff","userId":"u"}`, "invalid_payload"},
		"low in userId":         {"presence:join", `{"roomId":"r","userId":"\udc00"}`, "invalid_payload"},
		"in a state key":        {"presence:join", `{"roomId":"r","userId":"u","state":{"\ud800":1}}`, "invalid_payload"},
		"nested in state":       {"presence:join", `{"roomId":"r","userId":"u","state":{"k":{"x":["\udfff"]}}}`, "invalid_payload"},
		"pair in ids and state": {"presence:join", `{"roomId":"\ud83d\ude00","userId":"u","state":{"\ud83d\ude00":"\ud83d\ude00"}}`, "ok"},
	} {
		if got := ackCode(callAck(t, d, tc.event, json.RawMessage(tc.payload))); got != tc.want {
			t.Errorf("%s: got %s; want %s", name, got, tc.want)
		}
	}
	for name, tc := range map[string]struct{ event, payload, want string }{
		"patch value":  {"presence:heartbeat", `{"patchState":{"k":"\ud800"}}`, "invalid_payload"},
		"patch key":    {"presence:heartbeat", `{"patchState":{"\udbff":1}}`, "invalid_payload"},
		"chat text":    {"chat:message", `{"text":"hi \ud800"}`, "invalid_payload"},
		"chat pair":    {"chat:message", `{"text":"hi \ud83d\ude00"}`, "ok"},
		"patch nested": {"presence:heartbeat", `{"patchState":{"k":[["\udc00"]]}}`, "invalid_payload"},
	} {
		if got := ackCode(callAck(t, a, tc.event, json.RawMessage(tc.payload))); got != tc.want {
			t.Errorf("%s: got %s; want %s", name, got, tc.want)
		}
	}
}

// A bucket starts full, refills at its rate and never holds more than its
// burst, however long it idles; each class has a bucket of its own.
func TestRateBucket(t *testing.T) {
	t.Parallel()
	l := newLimits(RateLimits{Heartbeat: Rate{PerSecond: 2, Burst: 5}, Chat: Rate{PerSecond: 1, Burst: 1}})
	t0 := time.Unix(1_000_000, 0)
	take := func(at time.Duration, event, payload string) int {
		n := 0
		for n < 1000 && l.allowAt(eventClass(event, json.RawMessage(payload)), t0.Add(at)) {
			n++
		}
		return n
	}
	for _, tc := range []struct {
		name    string
		at      time.Duration
		event   string
		payload string
		want    int
	}{
		{"a fresh bucket holds the burst", 0, "presence:heartbeat", `{}`, 5},
		{"nothing is left", 0, "presence:heartbeat", `{}`, 0},
		{"half a token after 0.25 s", 250 * time.Millisecond, "presence:heartbeat", `{}`, 0},
		{"one token after 0.5 s", 500 * time.Millisecond, "presence:heartbeat", `{}`, 1},
		{"two tokens a second", 1500 * time.Millisecond, "presence:heartbeat", `{}`, 2},
		{"four in two seconds", 3500 * time.Millisecond, "presence:heartbeat", `{}`, 4},
		{"the burst after idling an hour", time.Hour, "presence:heartbeat", `{}`, 5},
		{"the burst after idling 3 s", time.Hour + 3*time.Second, "presence:heartbeat", `{}`, 5},
		{"chat has its own bucket", time.Hour + 3*time.Second, "chat:message", `{"text":"x"}`, 1},
		{"chat refills at its own rate", time.Hour + 4*time.Second, "chat:message", `{"text":"x"}`, 1},
		{"unlimited patches", time.Hour, "presence:heartbeat", `{"patchState":{}}`, 1000},
	} {
		if got := take(tc.at, tc.event, tc.payload); got != tc.want {
			t.Fatalf("%s: got %d allowed; want %d", tc.name, got, tc.want)
		}
	}
}
