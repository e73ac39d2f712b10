package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	socketio "github.com/googollee/go-socket.io"
	"github.com/googollee/go-socket.io/engineio"
	"github.com/gorilla/websocket"
)

// waitTimeout bounds every wait in the tests.
const waitTimeout = 5 * time.Second

// testServer is a real go-socket.io v1.7.0 server on a loopback port. Its root
// namespace answers "echo" with its first argument and "whoami" with the
// socket id; register adds more handlers before the server starts.
type testServer struct {
	url  string
	gone chan disconnect // one per OnDisconnect call

	mu    sync.Mutex // guards the following fields
	conns map[string]socketio.Conn
}

// disconnect records one OnDisconnect call.
type disconnect struct {
	id, reason string
}

// startServer starts a testServer; eio may be nil for the library defaults.
// The server stops when the test ends.
func startServer(t *testing.T, eio *engineio.Options, register func(*socketio.Server)) *testServer {
	t.Helper()
	srv := socketio.NewServer(eio)
	ts := &testServer{gone: make(chan disconnect, 64), conns: make(map[string]socketio.Conn)}
	srv.OnConnect("/", func(s socketio.Conn) error {
		ts.mu.Lock()
		ts.conns[s.ID()] = s
		ts.mu.Unlock()
		return nil
	})
	srv.OnDisconnect("/", func(s socketio.Conn, reason string) {
		select {
		case ts.gone <- disconnect{s.ID(), reason}:
		default:
		}
	})
	srv.OnError("/", func(socketio.Conn, error) {})
	srv.OnEvent("/", "echo", func(_ socketio.Conn, v json.RawMessage) json.RawMessage { return v })
	srv.OnEvent("/", "whoami", func(s socketio.Conn) string { return s.ID() })
	if register != nil {
		register(srv)
	}
	go func() { _ = srv.Serve() }() // returns io.EOF after Close
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", srv)
	hs := httptest.NewServer(mux)
	ts.url = hs.URL
	t.Cleanup(func() {
		hs.Close()
		ts.mu.Lock()
		conns := make([]socketio.Conn, 0, len(ts.conns))
		for _, s := range ts.conns {
			conns = append(conns, s)
		}
		ts.mu.Unlock()
		for _, s := range conns {
			s.Close()
		}
		srv.Close()
	})
	return ts
}

// conn returns the server side of the connection with the given id.
// go-socket.io writes the connect packet before it runs OnConnect, so a
// client can be connected a moment before the server has recorded it.
func (ts *testServer) conn(t *testing.T, id string) socketio.Conn {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ts.mu.Lock()
		s, ok := ts.conns[id]
		ts.mu.Unlock()
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("server has no connection %q", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitGone waits for the server's OnDisconnect for id and returns its reason.
func (ts *testServer) waitGone(t *testing.T, id string) string {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case d := <-ts.gone:
			if d.id == id {
				return d.reason
			}
		case <-deadline:
			t.Fatalf("server saw no disconnect of %q", id)
		}
	}
}

// dial connects to url and closes the connection when the test ends.
func dial(t *testing.T, url string, opts Options) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// call runs c.Call with a bounded context and fails the test on error.
func call(t *testing.T, c *Conn, event string, args ...any) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	raw, err := c.Call(ctx, event, args...)
	if err != nil {
		t.Fatalf("Call(%q): %v", event, err)
	}
	return raw
}

// waitDone waits for the connection to end.
func waitDone(t *testing.T, c *Conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("connection did not end")
	}
}

// fakeServer is a bare websocket endpoint scripted by the test, for wire
// details that go-socket.io never produces. It accepts one connection, writes
// what the test puts in out and forwards what it reads (except pings) to in.
type fakeServer struct {
	url   string
	out   chan fakeFrame
	in    chan string
	query chan *http.Request // the handshake request
	pings chan struct{}      // one per ping received, when there is room
}

// fakeFrame is one action of a fakeServer.
type fakeFrame struct {
	binary bool
	drop   bool // close the TCP connection instead of writing
	data   string
}

// fakeOpen is the open packet a fakeServer sends by default.
const fakeOpen = `0{"sid":"fake-sid","upgrades":[],"pingInterval":25000,"pingTimeout":5000}`

// startFake starts a fakeServer that first sends frames (typically the open
// and connect packets).
func startFake(t *testing.T, frames ...string) *fakeServer {
	t.Helper()
	f := &fakeServer{
		out:   make(chan fakeFrame, 64),
		in:    make(chan string, 64),
		query: make(chan *http.Request, 1),
		pings: make(chan struct{}, 64),
	}
	f.send(frames...)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.query <- r.Clone(context.Background())
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		stop := make(chan struct{})
		defer close(stop)
		go f.writeLoop(ws, stop)
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "2" {
				select {
				case f.pings <- struct{}{}:
				default:
				}
				continue
			}
			f.in <- string(msg)
		}
	}))
	f.url = hs.URL
	t.Cleanup(hs.Close)
	return f
}

// writeLoop writes the frames of f.out until stop is closed.
func (f *fakeServer) writeLoop(ws *websocket.Conn, stop <-chan struct{}) {
	for {
		select {
		case fr := <-f.out:
			switch {
			case fr.drop:
				ws.UnderlyingConn().Close()
			case fr.binary:
				ws.WriteMessage(websocket.BinaryMessage, []byte(fr.data))
			default:
				ws.WriteMessage(websocket.TextMessage, []byte(fr.data))
			}
		case <-stop:
			return
		}
	}
}

// send queues text frames for the client.
func (f *fakeServer) send(frames ...string) {
	for _, s := range frames {
		f.out <- fakeFrame{data: s}
	}
}

// expect reads the next frame the client sent and compares it with want.
func (f *fakeServer) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-f.in:
		if got != want {
			t.Fatalf("server read %s; want %s", got, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("server read nothing; want %s", want)
	}
}
