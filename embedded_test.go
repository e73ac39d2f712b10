package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"rtm/client"
)

// The embedded default (no REDIS_URL) runs the same presence code on an
// in-process Redis: joins, events, patches, resume, expiry, chat, leave.
func TestEmbeddedRedis(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	opts := testOptions(t)
	opts.RedisURL = "redis://" + mr.Addr()
	// Long enough that neither member expires before bob is meant to (no
	// heartbeats until then), short enough to wait for bob's expiry.
	opts.Presence.TTL = 3 * time.Second
	opts.Presence.ReaperLookback = opts.Presence.TTL
	n := startNode(t, opts)
	a, b := dial(t, n), dial(t, n)
	ackA := join(t, a, "r", "alice", map[string]any{"s": "é"})
	wantEvent(t, nextPresence(t, a), "join", 1, "alice", ackA.Self.ConnID)
	ackB := join(t, b, "r", "bob", nil)
	wantEvent(t, nextPresence(t, a), "join", 2, "bob", ackB.Self.ConnID)
	wantEvent(t, nextPresence(t, b), "join", 2, "bob", ackB.Self.ConnID)
	ctx := tctx(t)
	hb, err := a.Heartbeat(ctx, client.HeartbeatRequest{Epoch: ptr(int64(1)), PatchState: map[string]any{"s": nil, "t": 2}})
	if err != nil || hb.Epoch != 2 || !hb.Changed {
		t.Fatalf("got %+v, %v", hb, err)
	}
	if e := nextPresence(t, b); e.Type != "update" || string(e.State) != `{"t":2}` {
		t.Fatalf("got %+v", e)
	}
	if _, _, err := b.Chat(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	// a drops and resumes on a new socket: nobody sees a leave or join; it
	// recovers the chat message it missed after the update (seq 3).
	_ = a.Drop()
	a2 := dial(t, n)
	res, err := a2.Join(ctx, client.JoinRequest{RoomID: "r", UserID: "alice", Resume: &client.Self{ConnID: ackA.Self.ConnID, Epoch: 2},
		Since: &client.Since{Seq: 3, Epoch: ackA.History.Epoch}})
	if err != nil || res.Self.ConnID != ackA.Self.ConnID || res.Self.Epoch != 3 || res.Recovered == nil || !*res.Recovered || res.Replayed != 1 {
		t.Fatalf("got %+v, %v", res, err)
	}
	if m, err := client.ParseChatMessage(nextEvent(t, a2, 5*time.Second)); err != nil || m.Text != "hello" || m.Seq != 3 || m.Sub != 1 {
		t.Fatalf("got %+v, %v; want the chat message replayed", m, err)
	}
	// b stops heartbeating and expires; a2 keeps heartbeating.
	deadline := time.Now().Add(opts.Presence.ReaperLookback + 10*time.Second)
	for {
		if _, err := a2.Heartbeat(ctx, client.HeartbeatRequest{}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-a2.Events():
			if e, _ := client.ParsePresenceEvent(ev); e != nil && e.Type == "leave" {
				if e.UserID != "bob" || e.Reason != "expired" {
					t.Fatalf("got %+v", e)
				}
				goto expired
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("bob did not expire")
		}
	}
expired:
	if removed, err := a2.Leave(ctx); err != nil || !removed {
		t.Fatalf("got %v, %v", removed, err)
	}
	if keys := mr.Keys(); len(keys) != 0 {
		t.Fatalf("keys left behind: %v", keys)
	}
}

// `go run .` with no REDIS_URL serves on the embedded Redis and says so once.
func TestRunEmbedded(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-port", "0"}, func(string) string { return "" }, &out) }()
	addr := regexp.MustCompile(`msg=serving addr=\S+:(\d+)`)
	var port string
	waitFor(t, 10*time.Second, "the server to listen", func() bool {
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			port = m[1]
			return true
		}
		return false
	})
	resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	c, err := client.Dial(tctx(t), "http://127.0.0.1:"+port, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(tctx(t), client.JoinRequest{RoomID: "r", UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Chat(tctx(t), "hi"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	log := out.String()
	if strings.Count(log, "embedded in-process Redis") != 1 || !strings.Contains(log, "single-node and keeps nothing") {
		t.Fatalf("log does not say once that the embedded Redis is single-node:\n%s", log)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
