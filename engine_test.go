package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/gorilla/websocket"

	"rtm/client"
)

// pollingSession is a minimal Engine.IO v3 polling client speaking text
// payloads whose lengths count UTF-16 code units, as JavaScript clients do.
type pollingSession struct {
	t   *testing.T
	url string
	sid string
}

func openPolling(t *testing.T, base string) *pollingSession {
	t.Helper()
	p := &pollingSession{t: t, url: base + "/socket.io/?EIO=3&transport=polling&b64=1"}
	packets := p.get()
	if len(packets) == 0 || packets[0][0] != '0' {
		t.Fatalf("no open packet: %q", packets)
	}
	var open struct{ Sid string }
	if err := json.Unmarshal([]byte(packets[0][1:]), &open); err != nil {
		t.Fatal(err)
	}
	p.sid = open.Sid
	for _, pk := range packets[1:] {
		if pk == "40" {
			return p
		}
	}
	if pk := p.get(); len(pk) == 0 || pk[0] != "40" {
		t.Fatalf("no connect packet: %q", pk)
	}
	return p
}

// get polls once and splits the payload by its length prefixes, which must
// count characters the way a JavaScript client does.
func (p *pollingSession) get() []string {
	p.t.Helper()
	u := p.url
	if p.sid != "" {
		u += "&sid=" + p.sid
	}
	resp, err := http.Get(u)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		p.t.Fatalf("poll: HTTP %d %s", resp.StatusCode, body)
	}
	units := utf16.Encode([]rune(string(body)))
	var out []string
	for len(units) > 0 {
		i := 0
		for i < len(units) && units[i] != ':' {
			i++
		}
		n, err := strconv.Atoi(string(utf16.Decode(units[:i])))
		if err != nil || i+1+n > len(units) {
			p.t.Fatalf("bad payload framing in %q", body)
		}
		out = append(out, string(utf16.Decode(units[i+1:i+1+n])))
		units = units[i+1+n:]
	}
	return out
}

func (p *pollingSession) post(packets ...string) {
	p.t.Helper()
	var b strings.Builder
	for _, pk := range packets {
		fmt.Fprintf(&b, "%d:%s", len(utf16.Encode([]rune(pk))), pk)
	}
	resp, err := http.Post(p.url+"&sid="+p.sid, "text/plain;charset=UTF-8", strings.NewReader(b.String()))
	if err != nil {
		p.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		p.t.Fatalf("post: HTTP %d %s", resp.StatusCode, body)
	}
}

// Non-ASCII ids, state and text work over the polling transport both ways
// (go-socket.io counts payload lengths in bytes, clients in characters).
func TestPollingUnicode(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	ws := dial(t, n)
	join(t, ws, "salle-é", "bob", nil)
	nextPresence(t, ws)

	p := openPolling(t, n.url)
	// One packet per POST: the library answers the first with an ack that
	// waits for a poll, and this client polls only between its POSTs.
	p.post(`420["presence:join",{"roomId":"salle-é","userId":"zoë 👍","state":{"m":"中文 🚀"}}]`)
	var ack map[string]any
	var gotChat, sentChat bool
	deadline := time.Now().Add(5 * time.Second)
	for (ack == nil || !gotChat) && time.Now().Before(deadline) {
		if ack != nil && !sentChat {
			p.post(`42["chat:message",{"text":"ça va? 😀"}]`)
			sentChat = true
		}
		for _, pk := range p.get() {
			switch {
			case strings.HasPrefix(pk, "430"):
				var args []map[string]any
				if err := json.Unmarshal([]byte(pk[3:]), &args); err != nil {
					t.Fatal(err)
				}
				ack = args[0]
			case strings.HasPrefix(pk, `42["chat:message"`):
				var args []any
				_ = json.Unmarshal([]byte(pk[2:]), &args)
				if m := args[1].(map[string]any); m["text"] == "ça va? 😀" && m["userId"] == "zoë 👍" {
					gotChat = true
				}
			}
		}
	}
	if ack == nil || ack["ok"] != true || !gotChat {
		t.Fatalf("got ack %v, chat %v", ack, gotChat)
	}
	snap := ack["snapshot"].(map[string]any)
	if snap["roomId"] != "salle-é" {
		t.Fatalf("got %v", snap)
	}
	e := nextPresence(t, ws)
	var st map[string]string
	if err := json.Unmarshal(e.State, &st); err != nil || e.UserID != "zoë 👍" || st["m"] != "中文 🚀" {
		t.Fatalf("websocket side got %+v %s", e, e.State)
	}
}

// Session ids are crypto-random, not the library's counter: a third party
// cannot guess one and post events as someone else.
func TestSessionIDsUnguessable(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	seen := map[string]bool{}
	shape := regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	for i := 0; i < 5; i++ {
		c := dial(t, n)
		if !shape.MatchString(c.ID()) || seen[c.ID()] {
			t.Fatalf("session id %q is not a fresh 128-bit random id", c.ID())
		}
		seen[c.ID()] = true
	}
	for _, guess := range []string{"1", "2", "3"} {
		resp, err := http.Post(n.url+"/socket.io/?EIO=3&transport=polling&sid="+guess, "text/plain", strings.NewReader(`5:42[1]`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("a post to the guessed session %q was accepted", guess)
		}
	}
}

// greeter sends an event from its connect hook and panics in the hooks of
// sockets whose query asks for it.
type greeter struct{}

func (greeter) Name() string                     { return "greeter" }
func (greeter) Register(mc *ModuleContext) error { return nil }
func (greeter) OnConnect(s *Socket) {
	if u := s.token; u == "panic" {
		panic("boom")
	}
	s.Send("welcome", json.RawMessage(`{"hello":"wörld"}`))
}
func (greeter) OnDisconnect(s *Socket) {
	if u := s.token; u == "panic" {
		panic("boom again")
	}
}

// A module may send from its connect hook (a synchronous Emit there hangs
// the library), and panics in connect/disconnect hooks do not take the node
// down.
func TestConnectHookSendAndPanics(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t), greeter{})
	c := dial(t, n)
	e := nextEvent(t, c, 5*time.Second)
	if e.Name != "welcome" || string(e.Args[0]) != `{"hello":"wörld"}` {
		t.Fatalf("got %s %s", e.Name, e.Args)
	}
	ctx := tctx(t)
	bad, err := client.Dial(ctx, n.url, client.Options{Token: "panic"})
	if err != nil {
		t.Fatal(err)
	}
	join(t, bad, "r", "u", nil) // the socket works despite the panic
	_ = bad.Close()
	join(t, dial(t, n), "r", "v", nil)
}

// Many goroutines sending to one socket at once: everything arrives (the
// library's ack-id race does not apply: the server never emits with acks).
func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	c := dial(t, n)
	sock := n.srv.socket(c.ID())
	var wg sync.WaitGroup
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				sock.Send("n", json.RawMessage(strconv.Itoa(g*1000+i)))
			}
		}()
	}
	wg.Wait()
	last := map[int]int{}
	for i := 0; i < 1000; i++ {
		e := nextEvent(t, c, 5*time.Second)
		v, _ := strconv.Atoi(string(e.Args[0]))
		g, k := v/1000, v%1000
		if prev, ok := last[g]; ok && k <= prev {
			t.Fatalf("goroutine %d: %d after %d", g, k, prev)
		}
		last[g] = k
	}
}

// A client that stops reading fills its own queue and is disconnected; the
// others in the room keep receiving everything promptly.
func TestSlowClientDropped(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.OutboundQueueBytes = 256 << 10
	opts.Presence.TTL = time.Minute // no heartbeats during the burst
	opts.Rates = RateLimits{Chat: Rate{PerSecond: 1e6, Burst: 1e6}, Other: Rate{PerSecond: 100, Burst: 100}}
	n := startNode(t, opts)
	block := make(chan struct{})
	defer close(block)
	slow, err := client.Dial(tctx(t), n.url, client.Options{OnEvent: func(e client.Event) {
		if e.Name == "chat:message" {
			<-block // stop reading from the first message on
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sender, fast := dial(t, n), dial(t, n)
	join(t, slow, "r", "slow", nil)
	join(t, sender, "r", "sender", nil)
	join(t, fast, "r", "fast", nil)
	text := strings.Repeat("😀", 2000) // about 24 KB per message on the wire
	const msgs = 800
	got := make(chan int)
	go func() {
		count := 0
		for e := range fast.Events() {
			if e.Name == "chat:message" {
				if count++; count == msgs {
					break
				}
			}
		}
		got <- count
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < msgs; i++ {
		if _, _, err := sender.Chat(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case c := <-got:
		if c != msgs {
			t.Fatalf("fast client got %d of %d", c, msgs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("fast client stalled")
	}
	waitFor(t, 5*time.Second, "slow client dropped", func() bool { return n.srv.socket(slow.ID()) == nil })
}

// A 10 MB websocket frame closes that socket before the node reads it into
// memory; the node serves everyone else as before. The frame is streamed
// from a small buffer so that the test itself allocates little.
func TestHugeFrameRefused(t *testing.T) {
	n := startNode(t, testOptions(t))
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	if status, _ := br.ReadString('\n'); !strings.Contains(status, "101") {
		t.Fatalf("upgrade: %q", status)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const size = 10 << 20
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // FIN text, masked, 64-bit length, zero mask
	binary.BigEndian.PutUint64(hdr[2:10], size)
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	written := 0
	if _, err := conn.Write(hdr); err == nil {
		for written < size {
			k, err := conn.Write(chunk)
			written += k
			if err != nil {
				break
			}
		}
	}
	if written >= size {
		t.Fatalf("the node read all of a %d-byte frame", size)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("the node allocated %d MB for a refused frame", grew>>20)
	}
	join(t, dial(t, n), "r", "u", nil)
}

// A malformed packet closes only its own socket.
func TestMalformedPacketClosesOnlyItsSocket(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	bad, good := dial(t, n), dial(t, n)
	join(t, good, "r", "good", nil)
	_ = bad.WriteRaw(`42["presence:join",`)
	select {
	case <-bad.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("malformed packet did not close its socket")
	}
	if _, err := good.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
}

// Polling bodies are bounded.
func TestPollingBodyLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	p := openPolling(t, n.url)
	big := bytes.Repeat([]byte("a"), 1<<20)
	resp, err := http.Post(p.url+"&sid="+p.sid, "text/plain", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d; want 413", resp.StatusCode)
	}
}

// After shutdown, a handshake is refused with 503; it must not reach the
// closed go-socket.io server, where it would panic the process.
func TestHandshakeAfterShutdown(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	h := n.srv.Handler()
	n.stop()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/socket.io/?EIO=3&transport=polling", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("got %d; want 503", rec.Code)
	}
}

// go-socket.io registers a polling session after answering its handshake, so
// a client's immediate next poll could find no session ("invalid sid"). Many
// quick handshakes must all connect.
func TestPollingHandshakeRace(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for i := 0; i < 30; i++ {
		p := openPolling(t, n.url)
		p.post(`420["presence:sync"]`)
		for done := false; !done; {
			for _, pk := range p.get() {
				if strings.HasPrefix(pk, "430") {
					if !strings.Contains(pk, `"not_joined"`) {
						t.Fatalf("got %s", pk)
					}
					done = true
				}
			}
		}
	}
}

// During the upgrade, go-socket.io pauses polling as soon as it has answered
// the probe, while the client still writes over polling until it has the
// pong: a POST in between must not fail, and its packets must be handled,
// before anything sent over the websocket afterwards.
func TestUpgradeHandsOverPausedPost(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for i := 0; i < 5; i++ {
		if err := upgradeWithPausedPost(t, n); err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
	}
}

func upgradeWithPausedPost(t *testing.T, n *testNode) error {
	p := openPolling(t, n.url)
	wsURL := "ws" + strings.TrimPrefix(n.url, "http") + "/socket.io/?EIO=3&transport=websocket&sid=" + p.sid
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		return err
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "3probe" {
		return fmt.Errorf("probe: got %q, %v", msg, err)
	}
	// The server has paused polling now; the client does not know yet.
	p.post(`420["presence:join",{"roomId":"r","userId":"zoë-` + p.sid + `"}]`)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		return err
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`421["presence:sync"]`)); err != nil {
		return err
	}
	var got []string
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < 2 {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %q: %w", got, err)
		}
		if s := string(msg); strings.HasPrefix(s, "43") {
			got = append(got, s)
		}
	}
	if !strings.HasPrefix(got[0], `430[{"ok":true,"self"`) || !strings.HasPrefix(got[1], `431[{"ok":true,"snapshot"`) {
		t.Fatalf("got acks %q; want the join's, then the sync's", got)
	}
	return nil
}
