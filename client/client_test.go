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

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/gorilla/websocket"
)

// unicodeText mixes accents, CJK and an emoji outside the BMP.
const unicodeText = "é 中文 👍"

func TestDialAndCall(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.url, Options{})
	if c.ID() == "" {
		t.Fatal("ID() is empty")
	}
	ts.conn(t, c.ID()) // the server knows the connection by the same id

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
}

func TestConcurrentCalls(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.url, Options{})
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
				// Ackless emits interleave; the server answers them with
				// id-less acks, which must be ignored.
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
}

// registerBurst adds a "burst" handler that emits n "tick" events, 0 to n-1,
// before acknowledging.
func registerBurst(srv *socketio.Server) {
	srv.OnEvent("/", "burst", func(s socketio.Conn, n int) string {
		for i := range n {
			s.Emit("tick", i)
		}
		return "done"
	})
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
	ts := startServer(t, nil, registerBurst)
	c := dial(t, ts.url, Options{})
	const n = 2000
	// Nobody reads Events yet: the read loop must go on regardless.
	if got := string(call(t, c, "burst", n)); got != `"done"` {
		t.Fatalf("burst = %s", got)
	}
	call(t, c, "echo", "still alive")
	// The ack followed every tick on the wire, so all are queued; after Close
	// the channel delivers them and then closes.
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
}

func TestOnEvent(t *testing.T) {
	ts := startServer(t, nil, registerBurst)
	var mu sync.Mutex
	var events []Event
	c := dial(t, ts.url, Options{OnEvent: func(e Event) {
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
}

func TestUnicode(t *testing.T) {
	ts := startServer(t, nil, func(srv *socketio.Server) {
		srv.OnEvent("/", "check", func(_ socketio.Conn, s string) bool { return s == unicodeText })
		srv.OnEvent("/", "greet", func(s socketio.Conn) string {
			s.Emit("greeting", unicodeText)
			return "ok"
		})
	})
	c := dial(t, ts.url, Options{})
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
}

func TestCloseAndDrop(t *testing.T) {
	for name, tt := range map[string]struct {
		end        func(*Conn) error
		wantReason string // go-socket.io's: "" after a disconnect packet
	}{
		"close": {(*Conn).Close, ""},
		"drop":  {(*Conn).Drop, "client namespace disconnect"},
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, nil, nil)
			c := dial(t, ts.url, Options{})
			call(t, c, "echo", 1)
			if err := tt.end(c); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := ts.waitGone(t, c.ID()); got != tt.wantReason {
				t.Errorf("server disconnect reason %q; want %q", got, tt.wantReason)
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
	}
}

func TestCloseFromOnEvent(t *testing.T) {
	f := startFake(t, fakeOpen, "40")
	var self atomic.Pointer[Conn]
	closed := make(chan error, 1)
	c := dial(t, f.url, Options{OnEvent: func(e Event) {
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
}

func TestPendingCallFailsWhenServerCloses(t *testing.T) {
	held := make(chan socketio.Conn, 1)
	ts := startServer(t, nil, func(srv *socketio.Server) {
		// No return value: go-socket.io v1.7.0 never acknowledges.
		srv.OnEvent("/", "hold", func(s socketio.Conn) { held <- s })
	})
	c := dial(t, ts.url, Options{})
	result := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "hold")
		result <- err
	}()
	select {
	case s := <-held:
		s.Close()
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
}

func TestCallContextTimeout(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.url, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// go-socket.io never answers an event it has no handler for.
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
}

func TestPingKeepsIdleConnAlive(t *testing.T) {
	eio := &engineio.Options{PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond}
	ts := startServer(t, eio, nil)
	c := dial(t, ts.url, Options{})
	if c.pingInterval != eio.PingInterval || c.pingTimeout != eio.PingTimeout {
		t.Fatalf("ping interval, timeout = %v, %v; want %v, %v", c.pingInterval, c.pingTimeout, eio.PingInterval, eio.PingTimeout)
	}

	// A client that never pings is cut off by this server within pingTimeout...
	u, _ := endpoint(ts.url, "")
	silent, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		if _, _, err := silent.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("server did not cut a client that never pings")
			}
			break
		}
	}

	// ...whereas ours, idle much longer than that, stays up.
	select {
	case <-c.Done():
		t.Fatalf("idle connection ended: %v", c.Err())
	case <-time.After(time.Second):
	}
	if got := string(call(t, c, "echo", "awake")); got != `"awake"` {
		t.Errorf("echo = %s", got)
	}
	select {
	case d := <-ts.gone:
		if d.id == c.ID() {
			t.Errorf("server disconnected the idle client: %q", d.reason)
		}
	default:
	}
}

func TestDeadServerDetected(t *testing.T) {
	f := startFake(t, `0{"sid":"s","upgrades":[],"pingInterval":50,"pingTimeout":100}`, "40")
	c := dial(t, f.url, Options{})
	select {
	case <-f.pings:
	case <-time.After(waitTimeout):
		t.Fatal("client sent no ping")
	}
	waitDone(t, c) // the fake never answers pings
	if err := c.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "ping timeout") {
		t.Errorf("Err() = %v; want a ping timeout", err)
	}
}

func TestDialOptions(t *testing.T) {
	f := startFake(t, fakeOpen, "40")
	c := dial(t, f.url+"/", Options{Token: "a b&c", Header: http.Header{"Origin": {"http://app.example"}}})
	r := <-f.query
	if r.URL.Path != "/socket.io/" {
		t.Errorf("path = %q; want /socket.io/", r.URL.Path)
	}
	q := r.URL.Query()
	if q.Get("EIO") != "3" || q.Get("transport") != "websocket" || q.Get("token") != "a b&c" {
		t.Errorf("query = %q; want EIO=3, transport=websocket and the token", r.URL.RawQuery)
	}
	if got := r.Header.Get("Origin"); got != "http://app.example" {
		t.Errorf("Origin = %q", got)
	}
	if c.ID() != "fake-sid" {
		t.Errorf("ID() = %q; want fake-sid", c.ID())
	}
}

func TestDialFailures(t *testing.T) {
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad token", http.StatusUnauthorized)
	}))
	defer refuse.Close()
	for name, tt := range map[string]struct {
		url     func(t *testing.T) string
		timeout time.Duration
		want    error
	}{
		"http error":       {func(*testing.T) string { return refuse.URL }, waitTimeout, ErrRefused},
		"socket.io error":  {func(t *testing.T) string { return startFake(t, fakeOpen, `44"unauthorized"`).url }, waitTimeout, ErrRefused},
		"no connect":       {func(t *testing.T) string { return startFake(t, fakeOpen).url }, 200 * time.Millisecond, context.DeadlineExceeded},
		"no open":          {func(t *testing.T) string { return startFake(t).url }, 200 * time.Millisecond, context.DeadlineExceeded},
		"engine.io close":  {func(t *testing.T) string { return startFake(t, fakeOpen, "1").url }, waitTimeout, nil},
		"connect too soon": {func(t *testing.T) string { return startFake(t, "40").url }, waitTimeout, nil},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			c, err := Dial(ctx, tt.url(t), Options{})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Dial = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestWireFormat(t *testing.T) {
	f := startFake(t, fakeOpen, "40")
	c := dial(t, f.url, Options{})

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
}

func TestIgnoredAndOddPackets(t *testing.T) {
	f := startFake(t, fakeOpen, "40")
	c := dial(t, f.url, Options{})
	f.send("6", "3", "0{}", `42/chat,["other namespace"]`, `43["id-less ack"]`, `4399["unknown id"]`,
		"42[", "42[1]", "42{}", "4", "49", "")
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
}

func TestMalformedPacketClosesServerSide(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.url, Options{})
	if err := c.WriteRaw("42["); err != nil {
		t.Fatal(err)
	}
	ts.waitGone(t, c.ID())
	waitDone(t, c)
}

func TestDropCutsTCP(t *testing.T) {
	f := startFake(t, fakeOpen, "40")
	c := dial(t, f.url, Options{})
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
}

func TestServerDropEndsConn(t *testing.T) {
	f := startFake(t, fakeOpen, "40")
	c := dial(t, f.url, Options{})
	f.out <- fakeFrame{drop: true}
	waitDone(t, c)
	if err := c.Err(); !errors.Is(err, ErrClosed) || err == ErrClosed {
		t.Errorf("Err() = %v; want a read error wrapping ErrClosed", err)
	}
}
