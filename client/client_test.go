package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// unicodeText mixes accents, CJK and an emoji outside the BMP.
const unicodeText = "é 中文 👍"

func TestDialAndCall(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ts := startServer(t, serverConfig{})
		c := dial(t, ts.url, Options{Protocol: proto})
		if c.ID() == "" || c.Protocol() != proto {
			t.Fatalf("ID() = %q, Protocol() = %d; want an id and %d", c.ID(), c.Protocol(), proto)
		}
		ts.conn(t, c.ID()) // the server knows the socket by the same id
		if proto == 4 && c.EngineID() == c.ID() {
			t.Errorf("EngineID() = ID() = %q; want the open packet's sid, not the socket's", c.ID())
		}

		if got, want := string(call(t, c, "whoami")), fmt.Sprintf("%q", c.ID()); got != want {
			t.Errorf("whoami = %s; want %s", got, want)
		}
		if got, want := string(call(t, c, "echo", map[string]any{"a": 1, "b": []string{"x"}})), `{"a":1,"b":["x"]}`; got != want {
			t.Errorf("echo = %s; want %s", got, want)
		}
		if got := string(call(t, c, "echo")); got != "null" {
			t.Errorf("echo without argument = %s; want null", got)
		}
		if c.Err() != nil {
			t.Errorf("Err() = %v on an open connection; want nil", c.Err())
		}
	})
}

func TestConcurrentCalls(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ts := startServer(t, serverConfig{})
		c := dial(t, ts.url, Options{Protocol: proto})
		const workers, calls = 32, 50
		var wg sync.WaitGroup
		errs := make(chan error, workers*calls)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					want := fmt.Sprintf(`{"worker":%d,"call":%d}`, w, i)
					got, err := c.Call(context.Background(), "echo", json.RawMessage(want))
					if err != nil {
						errs <- err
					} else if string(got) != want {
						errs <- fmt.Errorf("got %s; want %s", got, want)
					}
					// Ackless emits interleave; the server does not answer them.
					if err := c.Emit("echo", i); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.nextID != workers*calls || len(c.pending) != 0 {
			t.Errorf("nextID = %d, pending = %d; want %d, 0", c.nextID, len(c.pending), workers*calls)
		}
	})
}

// burst is a handler that emits n "tick" events, 0 to n-1, before
// acknowledging.
func burst(s *testSocket, args []json.RawMessage) (json.RawMessage, bool) {
	var n int
	if len(args) == 0 || json.Unmarshal(args[0], &n) != nil {
		return json.RawMessage(`"bad n"`), true
	}
	for i := range n {
		s.emit("tick", i)
	}
	return json.RawMessage(`"done"`), true
}

// checkTicks checks that events are n ticks in order.
func checkTicks(t *testing.T, events []Event, n int) {
	t.Helper()
	if len(events) != n {
		t.Fatalf("got %d events; want %d", len(events), n)
	}
	for i, e := range events {
		if e.Name != "tick" || len(e.Args) != 1 || string(e.Args[0]) != fmt.Sprint(i) || e.Received.IsZero() {
			t.Fatalf("event %d = %s %s; want tick [%d]", i, e.Name, e.Args, i)
		}
	}
}

func TestEventsInOrder(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ts := startServer(t, serverConfig{handlers: map[string]handler{"burst": burst}})
		c := dial(t, ts.url, Options{Protocol: proto})
		const n = 2000
		// Nobody reads Events yet: the read loop must go on regardless.
		if got := string(call(t, c, "burst", n)); got != `"done"` {
			t.Fatalf("burst = %s", got)
		}
		call(t, c, "echo", "still alive")
		// The ack followed every tick on the wire, so all are queued; after
		// Close the channel delivers them and then closes.
		c.Close()
		var events []Event
		timeout := time.After(waitTimeout)
		for {
			select {
			case e, ok := <-c.Events():
				if !ok {
					checkTicks(t, events, n)
					return
				}
				events = append(events, e)
			case <-timeout:
				t.Fatalf("Events not closed after %d events", len(events))
			}
		}
	})
}

func TestOnEvent(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ts := startServer(t, serverConfig{handlers: map[string]handler{"burst": burst}})
		var mu sync.Mutex
		var events []Event
		c := dial(t, ts.url, Options{Protocol: proto, OnEvent: func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}})
		if c.Events() != nil {
			t.Error("Events() is not nil with OnEvent set")
		}
		const n = 500
		call(t, c, "burst", n)
		mu.Lock()
		defer mu.Unlock()
		checkTicks(t, events, n)
	})
}

func TestUnicode(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ts := startServer(t, serverConfig{handlers: map[string]handler{
			"check": func(_ *testSocket, args []json.RawMessage) (json.RawMessage, bool) {
				var s string
				ok := len(args) == 1 && json.Unmarshal(args[0], &s) == nil && s == unicodeText
				return json.RawMessage(fmt.Sprint(ok)), true
			},
			"greet": func(s *testSocket, _ []json.RawMessage) (json.RawMessage, bool) {
				s.emit("greeting", unicodeText)
				return json.RawMessage(`"ok"`), true
			},
		}})
		c := dial(t, ts.url, Options{Protocol: proto})
		if got := string(call(t, c, "check", unicodeText)); got != "true" {
			t.Errorf("server received another text: check = %s", got)
		}
		want, _ := json.Marshal(unicodeText)
		if got := call(t, c, "echo", unicodeText); string(got) != string(want) {
			t.Errorf("echo = %s; want %s", got, want)
		}
		call(t, c, "greet")
		select {
		case e := <-c.Events():
			var s string
			if e.Name != "greeting" || len(e.Args) != 1 || json.Unmarshal(e.Args[0], &s) != nil || s != unicodeText {
				t.Errorf("event = %s %s; want greeting %q", e.Name, e.Args, unicodeText)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no greeting")
		}
	})
}

func TestCloseAndDrop(t *testing.T) {
	for name, tt := range map[string]struct {
		end        func(*Conn) error
		wantReason string
	}{
		"close": {(*Conn).Close, reasonClient},
		"drop":  {(*Conn).Drop, reasonTransport},
	} {
		t.Run(name, func(t *testing.T) {
			eachProtocol(t, func(t *testing.T, proto int) {
				ts := startServer(t, serverConfig{})
				c := dial(t, ts.url, Options{Protocol: proto})
				call(t, c, "echo", 1)
				if err := tt.end(c); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got := ts.waitGone(t, c.ID()); got != tt.wantReason {
					t.Errorf("server saw %q; want %q", got, tt.wantReason)
				}
				waitDone(t, c)
				if c.Err() != ErrClosed {
					t.Errorf("Err() = %v; want ErrClosed", c.Err())
				}
				if err := c.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
				if err := c.Drop(); err != nil {
					t.Errorf("Drop after end: %v", err)
				}
				if err := c.Emit("echo"); err != ErrClosed {
					t.Errorf("Emit after end = %v; want ErrClosed", err)
				}
				if _, err := c.Call(context.Background(), "echo"); err != ErrClosed {
					t.Errorf("Call after end = %v; want ErrClosed", err)
				}
			})
		})
	}
}

func TestCloseFromOnEvent(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		var self atomic.Pointer[Conn]
		closed := make(chan error, 1)
		f, c := startFakeConnected(t, proto, Options{OnEvent: func(e Event) {
			if e.Name == "bye" {
				closed <- self.Load().Close()
			}
		}})
		self.Store(c)
		f.send(`42["bye"]`)
		// Close must not wait for the read loop it is running on.
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(closeWait / 2):
			t.Fatal("Close from OnEvent blocked")
		}
		f.expect(t, "41")
		waitDone(t, c)
		if c.Err() != ErrClosed {
			t.Errorf("Err() = %v; want ErrClosed", c.Err())
		}
	})
}

func TestPendingCallFailsWhenServerCloses(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		held := make(chan *testSocket, 1)
		ts := startServer(t, serverConfig{handlers: map[string]handler{
			"hold": func(s *testSocket, _ []json.RawMessage) (json.RawMessage, bool) {
				held <- s
				return nil, false // never acknowledged
			},
		}})
		c := dial(t, ts.url, Options{Protocol: proto})
		result := make(chan error, 1)
		go func() {
			_, err := c.Call(context.Background(), "hold")
			result <- err
		}()
		select {
		case s := <-held:
			s.close()
		case <-time.After(waitTimeout):
			t.Fatal("server never got the call")
		}
		select {
		case err := <-result:
			if err != ErrClosed {
				t.Errorf("Call = %v; want ErrClosed", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("pending Call did not fail")
		}
		waitDone(t, c)
		if err := c.Err(); !errors.Is(err, ErrClosed) || err == ErrClosed {
			t.Errorf("Err() = %v; want an explanation wrapping ErrClosed", err)
		}
	})
}

func TestCallContextTimeout(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ts := startServer(t, serverConfig{})
		c := dial(t, ts.url, Options{Protocol: proto})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		// The server never answers an event it has no handler for.
		if _, err := c.Call(ctx, "no-such-event"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Call = %v; want context.DeadlineExceeded", err)
		}
		c.mu.Lock()
		pending := len(c.pending)
		c.mu.Unlock()
		if pending != 0 {
			t.Errorf("%d calls still pending after the timeout", pending)
		}
		if got := string(call(t, c, "echo", "after")); got != `"after"` {
			t.Errorf("echo after timeout = %s", got)
		}
	})
}

// TestKeepalive checks each version's liveness rule against a server with
// short intervals: an idle client stays up for many intervals (it pings in
// protocol 3, it answers the server's pings in protocol 4), and a muted one
// is dropped by the server, not by itself, after about pingInterval +
// pingTimeout.
func TestKeepalive(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		cfg := serverConfig{pingInterval: 50 * time.Millisecond, pingTimeout: 100 * time.Millisecond}
		dead := cfg.pingInterval + cfg.pingTimeout
		ts := startServer(t, cfg)
		c := dial(t, ts.url, Options{Protocol: proto})
		if c.pingInterval != cfg.pingInterval || c.pingTimeout != cfg.pingTimeout {
			t.Fatalf("ping interval, timeout = %v, %v; want %v, %v", c.pingInterval, c.pingTimeout, cfg.pingInterval, cfg.pingTimeout)
		}
		// Idle for 5 × (interval + timeout): the server would have dropped a
		// silent client 5 times over.
		select {
		case <-c.Done():
			t.Fatalf("idle connection ended: %v", c.Err())
		case d := <-ts.gone:
			t.Fatalf("server dropped %s: %s", d.id, d.reason)
		case <-time.After(5 * dead):
		}
		if got := string(call(t, c, "echo", "awake")); got != `"awake"` {
			t.Errorf("echo = %s", got)
		}
		pings, pongs := ts.pings.Load(), ts.pongs.Load()
		if proto == 3 && (pings == 0 || pongs != 0) || proto == 4 && (pongs == 0 || pings != 0) {
			t.Errorf("server received %d pings, %d pongs; want only %s", pings, pongs, map[int]string{3: "pings", 4: "pongs"}[proto])
		}

		muted := dial(t, ts.url, Options{Protocol: proto})
		muted.Mute()
		muted.Mute() // idempotent
		t0 := time.Now()
		if got := ts.waitGone(t, muted.ID()); got != reasonPing {
			t.Errorf("server saw the muted client end by %q; want %q", got, reasonPing)
		}
		// The server's deadline runs from the last ping or pong before Mute.
		if took := time.Since(t0); took > dead+cfg.pingInterval {
			t.Errorf("muted client dropped after %v; want within %v", took, dead+cfg.pingInterval)
		}
		waitDone(t, muted)
		if c.Err() != nil {
			t.Errorf("the other client ended: %v", c.Err())
		}
	})
}

func TestDeadServerDetected(t *testing.T) {
	for name, tt := range map[string]struct {
		proto  int
		frames []string
	}{
		"EIO=3 no pong": {3, []string{`0{"sid":"s","upgrades":[],"pingInterval":50,"pingTimeout":100}`, "40"}},
		"EIO=4 no ping": {4, []string{`0{"sid":"s","upgrades":[],"pingInterval":50,"pingTimeout":100,"maxPayload":1000}`, `40{"sid":"x"}`}},
	} {
		t.Run(name, func(t *testing.T) {
			f := startFake(t, tt.frames...)
			c := dial(t, f.url, Options{Protocol: tt.proto})
			if tt.proto == 3 {
				select {
				case <-f.pings:
				case <-time.After(waitTimeout):
					t.Fatal("client sent no ping")
				}
			}
			waitDone(t, c) // the fake never answers pings, and never pings
			if err := c.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "ping timeout") {
				t.Errorf("Err() = %v; want a ping timeout", err)
			}
			if tt.proto == 4 && len(f.pings) != 0 {
				t.Errorf("client sent %d pings in protocol 4", len(f.pings))
			}
		})
	}
}

// TestPingPong4 checks that a protocol 4 client answers each server ping at
// once, in kind, and answers none after Mute.
func TestPingPong4(t *testing.T) {
	f, c := startFakeConnected(t, 4, Options{})
	f.send("2", "2probe")
	for _, want := range []string{"3", "3probe"} {
		select {
		case got := <-f.pongs:
			if got != want {
				t.Errorf("pong %q; want %q", got, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no pong; want %q", want)
		}
	}
	c.Mute()
	f.send("2", `42["after"]`)
	select {
	case e := <-c.Events():
		if e.Name != "after" {
			t.Fatalf("event %q; want after", e.Name)
		}
	case <-time.After(waitTimeout):
		t.Fatal("a muted client stopped reading")
	}
	// The client has read the ping before the event; a pong would have been
	// written before this emit, and the fake reads in order.
	if err := c.Emit("marker"); err != nil {
		t.Fatal(err)
	}
	f.expect(t, `42["marker"]`)
	if n := len(f.pongs); n != 0 {
		t.Errorf("muted client answered %d pings", n)
	}
}

// TestMute3 checks that a protocol 3 client stops pinging once muted, and
// does not end the connection itself when no pong comes.
func TestMute3(t *testing.T) {
	const interval, timeout = 20 * time.Millisecond, 40 * time.Millisecond
	f := startFake(t, fmt.Sprintf(`0{"sid":"s","upgrades":[],"pingInterval":%d,"pingTimeout":%d}`,
		interval.Milliseconds(), timeout.Milliseconds()), "40")
	c := dial(t, f.url, Options{Protocol: 3})
	select {
	case <-f.pings:
	case <-time.After(waitTimeout):
		t.Fatal("client sent no ping")
	}
	c.Mute()
	// Everything the client wrote before Mute returned has been read once
	// the marker is: pings after it would be new.
	if err := c.Emit("marker"); err != nil {
		t.Fatal(err)
	}
	f.expect(t, `42["marker"]`)
	for len(f.pings) > 0 {
		<-f.pings
	}
	select {
	case <-f.pings:
		t.Fatal("muted client pinged")
	case <-c.Done():
		t.Fatalf("muted client ended the connection itself: %v", c.Err())
	case <-time.After(5 * (interval + timeout)):
	}
}

func TestDialOptions(t *testing.T) {
	for name, tt := range map[string]struct {
		opts        Options
		wantEIO     string
		wantConnect string // protocol 4's CONNECT packet
	}{
		"EIO=3":            {Options{Protocol: 3}, "3", ""},
		"default":          {Options{}, "4", "40"},
		"EIO=4 auth":       {Options{Protocol: 4, Auth: map[string]string{"token": "t<1>"}}, "4", `40{"token":"t<1>"}`},
		"EIO=4 raw auth":   {Options{Auth: json.RawMessage(`{"token":"x","n":1}`)}, "4", `40{"token":"x","n":1}`},
		"EIO=4 empty auth": {Options{Auth: struct{}{}}, "4", `40{}`},
	} {
		t.Run(name, func(t *testing.T) {
			f := startFake(t, fakeOpen, `40{"sid":"fake-sio"}`)
			opts := tt.opts
			opts.Token = "a b&c"
			opts.Header = http.Header{"Origin": {"http://app.example"}}
			c := dial(t, f.url+"/", opts)
			r := <-f.query
			if r.URL.Path != "/socket.io/" {
				t.Errorf("path = %q; want /socket.io/", r.URL.Path)
			}
			q := r.URL.Query()
			if q.Get("EIO") != tt.wantEIO || q.Get("transport") != "websocket" || q.Get("token") != "a b&c" {
				t.Errorf("query = %q; want EIO=%s, transport=websocket and the token", r.URL.RawQuery, tt.wantEIO)
			}
			if got := r.Header.Get("Origin"); got != "http://app.example" {
				t.Errorf("Origin = %q", got)
			}
			if tt.wantConnect != "" {
				f.expect(t, tt.wantConnect)
			}
			wantID := map[string]string{"3": "fake-sid", "4": "fake-sio"}[tt.wantEIO]
			if c.ID() != wantID || c.EngineID() != "fake-sid" {
				t.Errorf("ID() = %q, EngineID() = %q; want %s, fake-sid", c.ID(), c.EngineID(), wantID)
			}
		})
	}
	for name, opts := range map[string]Options{
		"protocol 2":       {Protocol: 2},
		"auth in EIO=3":    {Protocol: 3, Auth: map[string]string{"token": "t"}},
		"auth not object":  {Auth: "token"},
		"auth not encoded": {Auth: func() {}},
	} {
		// Refused before any network dial, which would fail differently.
		if c, err := Dial(context.Background(), "http://127.0.0.1:1", opts); err == nil || strings.Contains(err.Error(), "dial") {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: Dial = %v; want an options error", name, err)
		}
	}
}

func TestDialFailures(t *testing.T) {
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad token", http.StatusUnauthorized)
	}))
	defer refuse.Close()
	fake := func(frames ...string) func(t *testing.T) string {
		return func(t *testing.T) string { return startFake(t, frames...).url }
	}
	for name, tt := range map[string]struct {
		proto   int
		url     func(t *testing.T) string
		timeout time.Duration
		want    error
		wantMsg string // the *RefusedError's message
	}{
		"http error":          {3, func(*testing.T) string { return refuse.URL }, waitTimeout, ErrRefused, "bad token"},
		"EIO=4 http error":    {4, func(*testing.T) string { return refuse.URL }, waitTimeout, ErrRefused, "bad token"},
		"socket.io error":     {3, fake(fakeOpen, `44"unauthorized"`), waitTimeout, ErrRefused, "unauthorized"},
		"connect error":       {4, fake(fakeOpen4, `44{"message":"unauthorized"}`), waitTimeout, ErrRefused, "unauthorized"},
		"connect error data":  {4, fake(fakeOpen4, `44{"message":"no","data":{"x":1}}`), waitTimeout, ErrRefused, "no"},
		"no connect":          {3, fake(fakeOpen), 200 * time.Millisecond, context.DeadlineExceeded, ""},
		"EIO=4 no connect":    {4, fake(fakeOpen4), 200 * time.Millisecond, context.DeadlineExceeded, ""},
		"no open":             {3, fake(), 200 * time.Millisecond, context.DeadlineExceeded, ""},
		"engine.io close":     {3, fake(fakeOpen, "1"), waitTimeout, nil, ""},
		"EIO=4 close":         {4, fake(fakeOpen4, "1"), waitTimeout, nil, ""},
		"connect too soon":    {3, fake("40"), waitTimeout, nil, ""},
		"EIO=4 connect early": {4, fake(`40{"sid":"x"}`, fakeOpen4), waitTimeout, nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			c, err := Dial(ctx, tt.url(t), Options{Protocol: tt.proto})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Dial = %v; want %v", err, tt.want)
			}
			var re *RefusedError
			if tt.wantMsg != "" && (!errors.As(err, &re) || re.Message != tt.wantMsg) {
				t.Errorf("Dial = %v; want a *RefusedError with message %q", err, tt.wantMsg)
			}
		})
	}
}

// TestAuth checks the refusal of each version against a server that wants a
// token: HTTP 401 at the protocol 3 handshake, CONNECT_ERROR in protocol 4,
// where the token may also travel in the auth object.
func TestAuth(t *testing.T) {
	ts := startServer(t, serverConfig{auth: func(token string, auth json.RawMessage) bool {
		var a struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(auth, &a)
		return token == "good" || a.Token == "good"
	}})
	for name, tt := range map[string]struct {
		opts       Options
		wantStatus int // 0: a Socket.IO refusal, -1: accepted
	}{
		"EIO=3 query":          {Options{Protocol: 3, Token: "good"}, -1},
		"EIO=3 bad query":      {Options{Protocol: 3, Token: "bad"}, http.StatusUnauthorized},
		"EIO=4 query":          {Options{Token: "good"}, -1},
		"EIO=4 auth":           {Options{Auth: map[string]string{"token": "good"}}, -1},
		"EIO=4 bad auth":       {Options{Auth: map[string]string{"token": "bad"}}, 0},
		"EIO=4 no credentials": {Options{}, 0},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			c, err := Dial(ctx, ts.url, tt.opts)
			if tt.wantStatus < 0 {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				call(t, c, "echo", 1)
				return
			}
			var re *RefusedError
			if !errors.Is(err, ErrRefused) || !errors.As(err, &re) || re.StatusCode != tt.wantStatus || re.Message != "unauthorized" {
				t.Fatalf("Dial = %v; want a refusal, status %d, message unauthorized", err, tt.wantStatus)
			}
		})
	}
}

func TestWireFormat(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		f, c := startFakeConnected(t, proto, Options{})

		if err := c.Emit("x", json.RawMessage(`{"b": 1, "a":"<&>"}`), "é<", nil); err != nil {
			t.Fatal(err)
		}
		f.expect(t, `42["x",{"b": 1, "a":"<&>"},"é<",null]`)
		if err := c.Emit("x", json.RawMessage(`{`)); err == nil {
			t.Error("Emit of an invalid json.RawMessage succeeded")
		}

		replies := make(chan string, 2)
		go func() {
			raw, err := c.Call(context.Background(), "y")
			replies <- fmt.Sprint(string(raw), err)
			raw, err = c.Call(context.Background(), "y", 1)
			replies <- fmt.Sprint(string(raw), err)
		}()
		f.expect(t, `420["y"]`)
		f.send(`430[{"ok":true},2]`)
		f.expect(t, `421["y",1]`)
		f.send(`431[]`)
		for _, want := range []string{`{"ok":true}<nil>`, `null<nil>`} {
			if got := <-replies; got != want {
				t.Errorf("Call = %s; want %s", got, want)
			}
		}

		if err := c.WriteRaw("42["); err != nil {
			t.Fatal(err)
		}
		f.expect(t, "42[")
	})
}

func TestIgnoredAndOddPackets(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		f, c := startFakeConnected(t, proto, Options{})
		f.send("6", "3", "0{}", `40{"sid":"again"}`, `42/chat,["other namespace"]`, `43["id-less ack"]`,
			`4399["unknown id"]`, "42[", "42[1]", "42{}", "4", "49", "")
		f.out <- fakeFrame{data: `451-["bin",{"_placeholder":true,"num":0}]`}
		f.out <- fakeFrame{binary: true, data: "\x04raw"}
		f.send(`427["asks",1]`, `44"oops"`, `42/,["root alias"]`, `42["last"]`, "41")

		want := []string{`asks [1]`, `error ["oops"]`, `root alias []`, `last []`}
		for _, w := range want {
			select {
			case e := <-c.Events():
				args, _ := json.Marshal(e.Args)
				if got := e.Name + " " + string(args); got != w {
					t.Errorf("event %s; want %s", got, w)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("no event; want %s", w)
			}
		}
		waitDone(t, c) // "41": the server disconnected the socket
		if err := c.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "disconnected") {
			t.Errorf("Err() = %v; want a server disconnect", err)
		}
		if _, ok := <-c.Events(); ok {
			t.Error("Events delivered more than expected")
		}
		if c.ID() == "again" {
			t.Error("a second CONNECT reply changed ID()")
		}
	})
}

func TestMalformedPacketClosesServerSide(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ts := startServer(t, serverConfig{})
		c := dial(t, ts.url, Options{Protocol: proto})
		if err := c.WriteRaw("42["); err != nil {
			t.Fatal(err)
		}
		if got := ts.waitGone(t, c.ID()); got != reasonParse {
			t.Errorf("server saw %q; want %q", got, reasonParse)
		}
		waitDone(t, c)
	})
}

func TestDropCutsTCP(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		f, c := startFakeConnected(t, proto, Options{})
		if err := c.Drop(); err != nil {
			t.Fatal(err)
		}
		// The server reads no disconnect packet and no close frame: the
		// connection just ends.
		select {
		case got := <-f.in:
			t.Errorf("server read %q after Drop", got)
		case <-time.After(100 * time.Millisecond):
		}
		waitDone(t, c)
	})
}

func TestServerDropEndsConn(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		f, c := startFakeConnected(t, proto, Options{})
		f.out <- fakeFrame{drop: true}
		waitDone(t, c)
		if err := c.Err(); !errors.Is(err, ErrClosed) || err == ErrClosed {
			t.Errorf("Err() = %v; want a read error wrapping ErrClosed", err)
		}
	})
}
