package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"rtm/client"
)

// pollingSession is a minimal Engine.IO polling client of either version:
// v3 text payloads whose lengths count UTF-16 code units, as JavaScript
// clients count them, or v4 payloads separated by 0x1e.
type pollingSession struct {
	t     testing.TB
	url   string
	sid   string
	proto int
	early []string // what the handshake response held after the open packet
}

// openPolling opens a polling session and connects its default namespace.
func openPolling(t testing.TB, base string, proto int) *pollingSession {
	t.Helper()
	p := handshakePolling(t, base, proto)
	if proto == 3 && slices.Contains(p.early, "40") {
		return p
	}
	if proto == 4 {
		p.post("40")
	}
	for i := 0; i < 3; i++ {
		for _, pk := range p.get() {
			if pk == "40" || strings.HasPrefix(pk, `40{"sid":`) {
				return p
			}
		}
	}
	t.Fatal("no connect packet")
	return nil
}

// handshakePolling opens a polling session and nothing more.
func handshakePolling(t testing.TB, base string, proto int) *pollingSession {
	t.Helper()
	p := &pollingSession{t: t, url: fmt.Sprintf("%s/socket.io/?EIO=%d&transport=polling", base, proto), proto: proto}
	packets := p.get()
	if len(packets) == 0 || packets[0][0] != '0' {
		t.Fatalf("no open packet: %q", packets)
	}
	var open struct{ Sid string }
	if err := json.Unmarshal([]byte(packets[0][1:]), &open); err != nil {
		t.Fatal(err)
	}
	p.sid, p.early = open.Sid, packets[1:]
	return p
}

// get polls once and splits the payload.
func (p *pollingSession) get() []string {
	p.t.Helper()
	status, body := p.request("GET", "")
	if status != 200 {
		p.t.Fatalf("poll: HTTP %d %s", status, body)
	}
	if p.proto == 4 {
		return strings.Split(body, "\x1e")
	}
	units := utf16.Encode([]rune(body))
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

// encode frames packets as a payload of the session's version.
func (p *pollingSession) encode(packets ...string) string {
	if p.proto == 4 {
		return strings.Join(packets, "\x1e")
	}
	var b strings.Builder
	for _, pk := range packets {
		fmt.Fprintf(&b, "%d:%s", len(utf16.Encode([]rune(pk))), pk)
	}
	return b.String()
}

// post sends packets in one POST, which must succeed.
func (p *pollingSession) post(packets ...string) {
	p.t.Helper()
	if status, body := p.request("POST", p.encode(packets...)); status != 200 {
		p.t.Fatalf("post: HTTP %d %s", status, body)
	}
}

// request sends one request of the session and returns the status and body.
func (p *pollingSession) request(method, body string) (int, string) {
	p.t.Helper()
	u := p.url
	if p.sid != "" {
		u += "&sid=" + p.sid
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ack polls until the ack of id arrives and returns its argument.
func (p *pollingSession) ack(id int) map[string]any {
	p.t.Helper()
	prefix := "43" + strconv.Itoa(id) + "["
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, pk := range p.get() {
			if strings.HasPrefix(pk, prefix) {
				var args []map[string]any
				if err := json.Unmarshal([]byte(pk[len(prefix)-1:]), &args); err != nil {
					p.t.Fatal(err)
				}
				return args[0]
			}
		}
	}
	p.t.Fatalf("no ack %d", id)
	return nil
}

// rawWS is a bare Engine.IO websocket client, for tests that send what no
// well-behaved client would, or stay silent when it should not.
type rawWS struct {
	t     testing.TB
	c     *websocket.Conn
	proto int
	sid   string
}

// dialRaw opens a websocket session of protocol proto and connects its
// default namespace (v4: with auth when not empty).
func dialRaw(t testing.TB, n *testNode, proto int, query, auth string) *rawWS {
	t.Helper()
	r := openRaw(t, n, proto, query)
	if proto == 4 {
		r.send("40" + auth)
	}
	pk := r.next()
	for pk == "2" { // v4 pings start with the session
		r.send("3")
		pk = r.next()
	}
	if pk != "40" && !strings.HasPrefix(pk, `40{"sid":"`) {
		t.Fatalf("got %q; want the connect packet", pk)
	}
	return r
}

// openRaw opens a websocket session and reads its open packet.
func openRaw(t testing.TB, n *testNode, proto int, query string) *rawWS {
	t.Helper()
	u := fmt.Sprintf("ws%s/socket.io/?EIO=%d&transport=websocket%s", strings.TrimPrefix(n.url, "http"), proto, query)
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := &rawWS{t: t, c: c, proto: proto}
	open := r.next()
	var o struct{ Sid string }
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &o) != nil {
		t.Fatalf("got %q; want the open packet", open)
	}
	r.sid = o.Sid
	return r
}

func (r *rawWS) send(pk string) {
	r.t.Helper()
	if err := r.c.WriteMessage(websocket.TextMessage, []byte(pk)); err != nil {
		r.t.Fatal(err)
	}
}

// next reads one packet, answering nothing.
func (r *rawWS) next() string {
	r.t.Helper()
	pk, err := r.read(10 * time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	return pk
}

func (r *rawWS) read(within time.Duration) (string, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(within))
	_, msg, err := r.c.ReadMessage()
	return string(msg), err
}

// ack reads until the ack of id, answering v4 pings, and returns its argument.
func (r *rawWS) ack(id int) map[string]any {
	r.t.Helper()
	prefix := "43" + strconv.Itoa(id) + "["
	for {
		pk := r.next()
		if pk == "2" {
			r.send("3")
		}
		if strings.HasPrefix(pk, prefix) {
			var args []map[string]any
			if err := json.Unmarshal([]byte(pk[len(prefix)-1:]), &args); err != nil {
				r.t.Fatal(err)
			}
			return args[0]
		}
	}
}

// closed waits until the server closes the connection, answering nothing,
// and returns when it did.
func (r *rawWS) closed(within time.Duration) time.Time {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := r.read(time.Until(deadline)); err != nil {
			if time.Now().After(deadline) {
				r.t.Fatalf("the connection is still open after %v", within)
			}
			return time.Now()
		}
	}
}

// closedByPeer reports whether err is what reading from or writing to a
// connection that the other end closed returns: not a timeout.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// versions are the protocol generations every engine test runs for.
var versions = []int{3, 4}

// Non-ASCII ids, state and text work over the polling transport both ways,
// in both versions (v3 payload lengths count UTF-16 code units).
func TestPollingUnicode(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for _, v := range versions {
		t.Run(fmt.Sprint("EIO", v), func(t *testing.T) {
			ws := dial(t, n)
			room := fmt.Sprintf("salle-é-%d", v)
			join(t, ws, room, "bob", nil)
			nextPresence(t, ws)

			p := openPolling(t, n.url, v)
			p.post(`420["presence:join",{"roomId":"` + room + `","userId":"zoë 👍","state":{"m":"中文 🚀 \u2028"}}]`)
			ack := p.ack(0)
			if ack["ok"] != true || ack["snapshot"].(map[string]any)["roomId"] != room {
				t.Fatalf("got %v", ack)
			}
			p.post(`421["chat:message",{"text":"ça va? 😀"}]`)
			gotChat := false
			for deadline := time.Now().Add(10 * time.Second); !gotChat && time.Now().Before(deadline); {
				for _, pk := range p.get() {
					if strings.HasPrefix(pk, `42["chat:message"`) {
						var args []any
						_ = json.Unmarshal([]byte(pk[2:]), &args)
						m := args[1].(map[string]any)
						gotChat = m["text"] == "ça va? 😀" && m["userId"] == "zoë 👍"
					}
				}
			}
			if !gotChat {
				t.Fatal("no chat message back over polling")
			}
			e := nextPresence(t, ws)
			var st map[string]string
			if err := json.Unmarshal(e.State, &st); err != nil || e.UserID != "zoë 👍" || st["m"] != "中文 🚀 \u2028" {
				t.Fatalf("websocket side got %+v %s", e, e.State)
			}
		})
	}
}

// The codecs: binary acks from clients and absurd numbers are refused
// without allocation; payload framing of both versions.
func TestEngineCodec(t *testing.T) {
	for in, want := range map[string]error{
		`518446744073709551615-["x"]`:    errBadPacket,
		`510000000000-["presence:sync"]`: errBadPacket,
		`5-["x"]`:                        errBadPacket,
		`5a-["x"]`:                       errBadPacket,
		`52-/chat,3["x",{"_placeholder":true,"num":0}]`: nil,
		`61-0[]`:                     errBinaryPacket,
		`2["x"]`:                     nil,
		`21234567890123456["x"]`:     errBadPacket,
		`9`:                          errBadPacket,
		``:                           errBadPacket,
		`0/chat,{"token":"x"}`:       nil,
		`2/admin,5["presence:sync"]`: nil,
	} {
		allocs := testing.AllocsPerRun(10, func() { _, _ = decodeSIO([]byte(in)) })
		if _, err := decodeSIO([]byte(in)); err != want || allocs > 2 {
			t.Errorf("decodeSIO(%q): got %v (%v allocs); want %v", in, err, allocs, want)
		}
	}
	if p, _ := decodeSIO([]byte(`52-/chat,3["x"]`)); p.attached != 2 || p.nsp != "/chat" || p.id != 3 || string(p.data) != `["x"]` {
		t.Errorf("got %+v", p)
	}
	p, _ := decodeSIO([]byte(`2/admin,5["x"]`))
	if p.nsp != "/admin" || !p.isNsp || p.id != 5 || string(p.data) != `["x"]` {
		t.Errorf("got %+v", p)
	}
	split := func(dec func([]byte, func([]byte) error) error, in string) ([]string, error) {
		var out []string
		err := dec([]byte(in), func(b []byte) error { out = append(out, string(b)); return nil })
		return out, err
	}
	for in, want := range map[string]string{
		"2:4é2:40":        "4é|40",
		"4:42👍":           "42👍",
		"1:2":             "2",
		"3:42":            "!",
		"9:42é":           "!",
		"x:1":             "!",
		"":                "!",
		"0:":              "!",
		"99999999999:4":   "!",
		"3:4\xf0\x9f\x91": "!",
	} {
		got, err := split(decodePayloadV3, in)
		if (want == "!") != (err != nil) || err == nil && strings.Join(got, "|") != want {
			t.Errorf("v3 %q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"4é\x1e40": "4é|40",
		"2":        "2",
		"\x1e2":    "!",
		"":         "!",
		"4\xff":    "!",
	} {
		got, err := split(decodePayloadV4, in)
		if (want == "!") != (err != nil) || err == nil && strings.Join(got, "|") != want {
			t.Errorf("v4 %q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]int{"a": 1, "é": 1, "中": 1, "👍": 2, "a👍é": 4} {
		if got := utf16Len([]byte(in)); got != want {
			t.Errorf("utf16Len(%q) = %d; want %d", in, got, want)
		}
	}
}

// Session ids are crypto-random: a third party cannot guess one and post
// events as someone else.
func TestSessionIDsUnguessable(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	// Ids made from a counter (or a clock) would be fresh and well shaped
	// too: any two ids must differ in about half their 128 bits (32 is
	// more than 5 standard deviations below the 64 of random ids).
	var ids [][]byte
	for i := 0; i < 12; i++ {
		r := openRaw(t, n, versions[i%2], "")
		b, err := base64.RawURLEncoding.DecodeString(r.sid)
		if err != nil || len(b) != 16 || len(r.sid) != 22 {
			t.Fatalf("session id %q is not 128 bits in unpadded base64url", r.sid)
		}
		for _, prev := range ids {
			diff := 0
			for k := range b {
				diff += bits.OnesCount8(b[k] ^ prev[k])
			}
			if diff < 32 {
				t.Fatalf("session ids %x and %x differ in %d bits; want about 64 (random)", prev, b, diff)
			}
		}
		ids = append(ids, b)
	}
	for _, guess := range []string{"1", "2", "AAAAAAAAAAAAAAAAAAAAAA"} {
		resp, err := http.Post(n.url+"/socket.io/?EIO=4&transport=polling&sid="+guess, "text/plain", strings.NewReader(`42["presence:sync"]`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a post to the guessed session %q: HTTP %d; want 400", guess, resp.StatusCode)
		}
	}
}

// greeter sends an event from its connect hook and panics in the hooks of
// sockets whose query asks for it.
type greeter struct{}

func (greeter) Name() string                     { return "greeter" }
func (greeter) Register(mc *ModuleContext) error { return nil }
func (greeter) OnConnect(s *Socket) {
	if s.Handshake().Query.Get("token") == "panic" {
		panic("boom")
	}
	s.Send("welcome", json.RawMessage(`{"hello":"wörld"}`))
}
func (greeter) OnDisconnect(s *Socket) {
	if s.Handshake().Query.Get("token") == "panic" {
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

// Many goroutines sending to one socket at once: everything arrives, in each
// sender's order.
func TestConcurrentSends(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	c := dial(t, n)
	var sock *Socket
	waitFor(t, 5*time.Second, "the socket registered", func() bool { sock = n.srv.socket(c.ID()); return sock != nil })
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
	// The test is about the node's queues: 19 MB of chat in the shared
	// Redis's history too only slowed the burst down on a busy machine.
	opts.Presence.History = HistoryOptions{TTL: -1}
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Eight calls in flight at a time: one after the other, 800 round
	// trips can outlast the deadline on a busy machine.
	var wg sync.WaitGroup
	errs := make(chan error, msgs)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < msgs; i += 8 {
				if _, _, err := sender.Chat(ctx, text); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
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
	for _, v := range versions {
		conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /socket.io/?EIO=%d&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"+
			"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", v)
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
		_, err = conn.Write(hdr)
		for err == nil && written < size {
			var k int
			k, err = conn.Write(chunk)
			written += k
		}
		if written >= size {
			t.Fatalf("EIO=%d: the node read all of a %d-byte frame", v, size)
		}
		// The node closed the connection: the write fails, it does not
		// just block because nobody reads.
		if !closedByPeer(err) {
			t.Fatalf("EIO=%d: writing the frame after %d bytes: %v; want the connection closed by the node", v, written, err)
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
			t.Fatalf("EIO=%d: the node allocated %d MB for a refused frame", v, grew>>20)
		}
	}
	join(t, dial(t, n), "r", "u", nil)
}

// Packets that are malformed or not part of the protocol (binary packets
// with absurd attachment counts among them) close only their own socket, on
// both transports and in both versions; the node and the others carry on.
func TestMalformedPacketClosesOnlyItsSocket(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	good := dial(t, n)
	join(t, good, "r", "good", nil)
	bad := []string{
		`42["presence:join",`,
		`4518446744073709551615-["x"]`,
		`4510000000000-["presence:sync"]`,
		`4518446744073709551615-0["presence:sync"]`,
		`461-0[{"_placeholder":true,"num":0}]`,
		`42{"not":"an array"}`,
		`42[1,2]`,
		`4x`,
		`44{"message":"from a client"}`,
		`9`,
		`b4AAAA`,
	}
	for _, v := range versions {
		for _, pk := range bad {
			r := dialRaw(t, n, v, "", "")
			r.send(pk)
			r.closed(5 * time.Second)

			p := openPolling(t, n.url, v)
			status, _ := p.request("POST", p.encode(pk))
			if status != http.StatusBadRequest {
				t.Errorf("EIO=%d polling %q: HTTP %d; want 400", v, pk, status)
			}
			if status, _ := p.request("GET", ""); status != http.StatusBadRequest {
				t.Errorf("EIO=%d polling %q: the session lives on (HTTP %d)", v, pk, status)
			}
		}
	}
	if _, err := good.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "only the good socket left", func() bool { return n.srv.eng.Len() == 1 })
}

// Another namespace is refused with an error packet for that namespace; the
// socket stays connected on "/".
func TestOtherNamespaceRefused(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for _, v := range versions {
		r := dialRaw(t, n, v, "", "")
		r.send("40/admin,")
		if pk := r.next(); !strings.HasPrefix(pk, "44/admin,") || !strings.Contains(pk, "Invalid namespace") {
			t.Fatalf("EIO=%d: got %q", v, pk)
		}
		r.send(`42/admin,0["presence:sync"]`)
		r.send(`421["presence:sync"]`)
		if ack := r.ack(1); ack["ok"] != false || ack["error"].(map[string]any)["code"] != "not_joined" {
			t.Fatalf("EIO=%d: got %v", v, ack)
		}
	}
}

// Polling bodies are bounded.
func TestPollingBodyLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for _, v := range versions {
		p := openPolling(t, n.url, v)
		status, _ := p.request("POST", strings.Repeat("a", 1<<20))
		if status != http.StatusRequestEntityTooLarge {
			t.Fatalf("EIO=%d: got %d; want 413", v, status)
		}
	}
}

// After shutdown, a handshake is refused with 503.
func TestHandshakeAfterShutdown(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	h := n.srv.Handler()
	n.stop()
	for _, v := range versions {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/socket.io/?EIO=%d&transport=polling", v), nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("EIO=%d: got %d; want 503", v, rec.Code)
		}
	}
}

// Requests the engine does not serve: unknown versions and transports,
// JSONP, and a session id of the other version.
func TestEngineRefusesBadRequests(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	p := openPolling(t, n.url, 4)
	for q, want := range map[string]int{
		"EIO=2&transport=polling":                  400,
		"transport=polling":                        400,
		"EIO=4&transport=flashsocket":              400,
		"EIO=3&transport=polling&j=0":              400,
		"EIO=3&transport=polling&sid=" + p.sid:     400,
		"EIO=4&transport=polling&sid=" + p.sid[1:]: 400,
	} {
		resp, err := http.Get(n.url + "/socket.io/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: HTTP %d; want %d", q, resp.StatusCode, want)
		}
	}
}

// A POST that arrives after the probe but before the upgrade packet is
// handled, and before anything sent over the websocket afterwards.
func TestUpgradeKeepsOrder(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for _, v := range versions {
		for i := 0; i < 3; i++ {
			if err := upgradeWithPost(t, n, v); err != nil {
				t.Fatalf("EIO=%d upgrade %d: %v", v, i+1, err)
			}
		}
	}
}

func upgradeWithPost(t *testing.T, n *testNode, v int) error {
	p := openPolling(t, n.url, v)
	parked := make(chan []string, 1)
	go func() { parked <- p.get() }() // the poll the upgrade must release
	wsURL := fmt.Sprintf("ws%s/socket.io/?EIO=%d&transport=websocket&sid=%s", strings.TrimPrefix(n.url, "http"), v, p.sid)
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
	select {
	case pk := <-parked:
		if len(pk) != 1 || pk[0] != "6" {
			return fmt.Errorf("the parked poll got %q; want a noop", pk)
		}
	case <-time.After(5 * time.Second):
		return errors.New("the probe did not release the parked poll")
	}
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
		return fmt.Errorf("got acks %q; want the join's, then the sync's", got)
	}
	if status, _ := p.request("GET", ""); status != http.StatusBadRequest {
		return fmt.Errorf("a poll after the upgrade: HTTP %d; want 400", status)
	}
	return nil
}

// A polling client's close packet: the poll parked at that moment, or one
// that comes right after it, is answered with a noop (as engine.io answers
// it), and the session is gone; a connected socket's host hears "client
// close". A poll that comes while a probe finishes the upgrade gets 400, as
// after the upgrade, and a second websocket for a session that has one is
// opened and closed with status 1008.
func TestPollingCloseAndUpgradeRaces(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for _, v := range versions {
		p := openPolling(t, n.url, v)
		parked := make(chan []string, 1)
		go func() { parked <- p.get() }()
		waitFor(t, 5*time.Second, "the poll parked", func() bool {
			s := n.srv.eng.session(p.sid)
			s.wmu.Lock()
			defer s.wmu.Unlock()
			return s.poll != nil
		})
		p.post("1")
		if pk := <-parked; len(pk) != 1 || pk[0] != "6" {
			t.Fatalf("EIO=%d: the parked poll got %q; want a noop", v, pk)
		}
		waitFor(t, 5*time.Second, "the session gone", func() bool { return n.srv.socket(p.sid) == nil })

		p = openPolling(t, n.url, v)
		p.post("1")
		if pk := p.get(); len(pk) != 1 || pk[0] != "6" { // within closeGrace
			t.Fatalf("EIO=%d: the poll after the close got %q; want a noop", v, pk)
		}
		waitFor(t, 5*time.Second, "the session gone", func() bool { return n.srv.socket(p.sid) == nil })
		if status, _ := p.request("GET", ""); status != http.StatusBadRequest {
			t.Fatalf("EIO=%d: a poll after the close: HTTP %d; want 400", v, status)
		}

		// A poll that comes while the probe is answered waits for the
		// upgrade (at most probeGrace), which completes meanwhile: 400. A
		// poll answered after probeGrace proves nothing (a slow machine):
		// the case is tried again.
		var wsURL string
		for attempt := 1; ; attempt++ {
			var status int
			var waited time.Duration
			wsURL, status, waited = pollDuringProbe(t, n, v)
			if status == http.StatusBadRequest {
				break
			}
			if waited < probeGrace || attempt == 3 {
				t.Fatalf("EIO=%d: a poll during the upgrade: HTTP %d after %v; want 400", v, status, waited)
			}
		}
		second, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			t.Fatalf("EIO=%d: a second websocket: %v; want it opened, then closed", v, err)
		}
		_, _, err = second.ReadMessage()
		if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != wsClosePolicy {
			t.Fatalf("EIO=%d: a second websocket got %v; want close %d", v, err, wsClosePolicy)
		}
		second.Close()
	}
}

// pollDuringProbe opens a polling session, probes a websocket upgrade
// ("2probe", "3probe"), polls, sends "5" once the poll waits (or has been
// answered), and returns the websocket's URL, the poll's status and how long
// it took.
func pollDuringProbe(t *testing.T, n *testNode, v int) (wsURL string, status int, took time.Duration) {
	t.Helper()
	p := openPolling(t, n.url, v)
	wsURL = fmt.Sprintf("ws%s/socket.io/?EIO=%d&transport=websocket&sid=%s", strings.TrimPrefix(n.url, "http"), v, p.sid)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	nc := ws.UnderlyingConn()
	if _, err := nc.Write(clientFrame(0x81, "2probe")); err != nil {
		t.Fatal(err)
	}
	if op, pk := serverFrame(t, nc); op != wsText || string(pk) != "3probe" {
		t.Fatalf("got %x %q; want 3probe", op, pk)
	}
	start := time.Now()
	polled := make(chan int, 1)
	go func() {
		resp, err := http.Get(p.url + "&sid=" + p.sid)
		if err != nil {
			polled <- 0
			return
		}
		resp.Body.Close()
		polled <- resp.StatusCode
	}()
	waitFor(t, 5*time.Second, "the poll to wait or be answered", func() bool {
		if len(polled) > 0 {
			return true
		}
		s := n.srv.eng.session(p.sid)
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return s.poll != nil
	})
	if _, err := nc.Write(clientFrame(0x81, "5")); err != nil {
		t.Fatal(err)
	}
	status = <-polled
	return wsURL, status, time.Since(start)
}

// Handshakes that are never continued are gone, memory included, within
// the ping timeout; while they live they hold their IP's slots.
func TestAbandonedHandshakesReclaimed(t *testing.T) {
	opts := testOptions(t)
	opts.PingInterval, opts.PingTimeout = 300*time.Millisecond, 400*time.Millisecond
	n := startNode(t, opts)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const abandoned = 2000
	pad := strings.Repeat("x", 4<<10) // a fat header each, as an attacker would send
	start, most := time.Now(), 0
	for i := 0; i < abandoned; i++ {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/socket.io/?EIO=%d&transport=polling", n.url, versions[i%2]), nil)
		req.Header.Set("X-Pad", pad)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		most = max(most, n.srv.eng.Len())
	}
	r := openRaw(t, n, 4, "") // a websocket that never sends CONNECT
	if most < 50 {
		t.Fatalf("at most %d sessions while handshaking; want them counted until they time out", most)
	}
	waitFor(t, 10*time.Second, "abandoned sessions gone", func() bool { return n.srv.eng.Len() == 0 })
	if took := time.Since(start); took < opts.PingTimeout {
		t.Fatalf("sessions gone after %v; want no earlier than the ping timeout (%v)", took, opts.PingTimeout)
	}
	r.closed(5 * time.Second)
	if grew := int64(heap()) - int64(before); grew > 2<<20 {
		t.Fatalf("heap grew by %d KB after %d abandoned handshakes", grew>>10, abandoned)
	}
}

// A session holds its IP's slot from the handshake until it is gone, on
// every transport: late connects and upgrades do not get around the cap.
func TestSocketsPerIPCapHeldUntilGone(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.MaxSocketsPerIP = 3
	n := startNode(t, opts)
	a := handshakePolling(t, n.url, 3) // never connects further
	b := handshakePolling(t, n.url, 4) // connects later
	c := openRaw(t, n, 4, "")
	refused := func() int {
		resp, err := http.Get(n.url + "/socket.io/?EIO=4&transport=polling")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := refused(); got != http.StatusTooManyRequests {
		t.Fatalf("a 4th session: HTTP %d; want 429", got)
	}
	b.post("40")
	c.send("40")
	if got := refused(); got != http.StatusTooManyRequests {
		t.Fatalf("after the late connects: HTTP %d; want 429", got)
	}
	a.post("1") // the client closes its session
	waitFor(t, 5*time.Second, "a slot freed", func() bool { return refused() == http.StatusOK })
}

// A Socket.IO DISCONNECT ends the session and its transport: a later
// CONNECT cannot make a fresh socket with fresh limits on the same
// connection.
func TestDisconnectPacketClosesTransport(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.MaxSocketsPerIP = 1
	n := startNode(t, opts)
	for _, v := range versions {
		r := dialRaw(t, n, v, "", "")
		r.send(`420["presence:join",{"roomId":"r","userId":"u"}]`)
		if ack := r.ack(0); ack["ok"] != true {
			t.Fatalf("got %v", ack)
		}
		r.send("41")
		r.send("40")
		r.closed(5 * time.Second)
		waitFor(t, 5*time.Second, "the session gone", func() bool { return n.srv.eng.Len() == 0 })
	}
}

// A v4 client that stops answering pings, a v3 client that stops pinging
// and a polling client that stops polling are dropped after pingInterval +
// pingTimeout of silence, not before; clients that answer stay.
func TestPingTimeout(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	// A ping timeout that a live client's pong meets even on a busy machine.
	opts.PingInterval, opts.PingTimeout = 200*time.Millisecond, time.Second
	n := startNode(t, opts)
	silence := opts.PingInterval + opts.PingTimeout
	for _, v := range versions {
		r := dialRaw(t, n, v, "", "")
		last := time.Now() // the client's last packet: its connect
		gone := r.closed(silence + 5*time.Second)
		if took := gone.Sub(last); took < silence-50*time.Millisecond {
			t.Errorf("EIO=%d websocket: dropped after %v of silence; want at least %v", v, took, silence)
		}
		p := openPolling(t, n.url, v)
		last = time.Now()
		waitFor(t, silence+5*time.Second, "the polling session gone", func() bool { return n.srv.socket(p.sid) == nil })
		if took := time.Since(last); took < silence-50*time.Millisecond {
			t.Errorf("EIO=%d polling: dropped after %v; want at least %v", v, took, silence)
		}
	}
	// Live clients outlast many intervals: a v4 client answering the
	// server's pings, and a v3 client sending its own.
	live := dialRaw(t, n, 4, "", "")
	old := dial(t, n, client.Options{Protocol: 3})
	for end := time.Now().Add(4 * silence); time.Now().Before(end); {
		pk, err := live.read(silence + 5*time.Second) // the server's pings may come late on a busy machine
		if err != nil {
			t.Fatalf("the live v4 client was dropped: %v", err)
		}
		if pk == "2" {
			live.send("3")
		}
	}
	live.send(`421["presence:sync"]`)
	live.ack(1)
	select {
	case <-old.Done():
		t.Fatalf("the live v3 client was dropped: %v", old.Err())
	default:
	}
	if _, err := old.Sync(tctx(t)); err == nil || !strings.Contains(err.Error(), "not_joined") {
		t.Fatalf("the live v3 client: %v", err)
	}
}

// Unknown events count against the "other" limit; a socket that keeps
// flooding is disconnected, and others are served meanwhile.
func TestUnknownEventFlood(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	other := dial(t, n)
	join(t, other, "r", "other", nil)
	for _, v := range versions {
		r := dialRaw(t, n, v, "", "")
		r.send(`420["no:such:event",{}]`)
		if ack := r.ack(0); ack["ok"] != false || ack["error"].(map[string]any)["code"] != "invalid_payload" {
			t.Fatalf("got %v", ack)
		}
		// Past the burst, the answers turn to rate_limited (read one at a
		// time: a disconnect drops answers still queued).
		i := 1
		for ; ; i++ {
			if i > 200 {
				t.Fatalf("EIO=%d: no rate_limited answer after %d unknown events", v, i)
			}
			r.send(fmt.Sprintf(`42%d["no:such:event"]`, i))
			if ack := r.ack(i); ack["error"].(map[string]any)["code"] == "rate_limited" {
				break
			}
		}
		// A socket that keeps going is disconnected; the others are served.
		for ; ; i++ {
			if err := r.c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`42%d["no:such:event"]`, i))); err != nil {
				break // closed by the server
			}
			if i > 5000 {
				t.Fatalf("EIO=%d: still connected after %d unknown events", v, i)
			}
			if i%50 == 0 {
				if _, err := other.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		r.closed(5 * time.Second)
	}
}

// With JWT auth on: v3 takes the token in the query only (401 without it);
// v4 takes it in the query or in the CONNECT auth object, and answers a bad
// one with a CONNECT_ERROR carrying "unauthorized".
func TestConnectAuthBothVersions(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.JWTSecret = []byte(testSecret)
	n := startNode(t, opts)
	good := signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	status := func(q string) int {
		resp, err := http.Get(n.url + "/socket.io/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for q, want := range map[string]int{
		"EIO=3&transport=polling":               401,
		"EIO=3&transport=polling&token=bad":     401,
		"EIO=3&transport=polling&token=" + good: 200,
		"EIO=4&transport=polling":               200,
		"EIO=4&transport=polling&token=bad":     401,
		"EIO=4&transport=polling&token=" + good: 200,
	} {
		if got := status(q); got != want {
			t.Errorf("%s: HTTP %d; want %d", q, got, want)
		}
	}
	for auth, ok := range map[string]bool{
		``:                         false,
		`{}`:                       false,
		`{"token":"bad"}`:          false,
		`{"token":42}`:             false,
		`{"token":"` + good + `"}`: true,
	} {
		r := openRaw(t, n, 4, "")
		r.send("40" + auth)
		pk := r.next()
		if ok != strings.HasPrefix(pk, `40{"sid":"`) || !ok && pk != `44{"message":"unauthorized"}` {
			t.Fatalf("auth %q: got %q", auth, pk)
		}
		if !ok {
			r.closed(5 * time.Second)
			continue
		}
		r.send(`420["presence:join",{"roomId":"r","userId":"alice"}]`)
		if ack := r.ack(0); ack["ok"] != true {
			t.Fatalf("join with the auth token: %v", ack)
		}
		r.send(`421["presence:join",{"roomId":"r2","userId":"mallory"}]`)
		if ack := r.ack(1); ack["ok"] != false {
			t.Fatalf("second join: %v", ack)
		}
	}
	// The query token counts when the CONNECT brings none.
	r := openRaw(t, n, 4, "&token="+good)
	r.send("40")
	if pk := r.next(); !strings.HasPrefix(pk, `40{"sid":"`) {
		t.Fatalf("query token: got %q", pk)
	}
}

// One IP's HTTP connections that are not websockets are capped: idle
// keep-alive connections cannot use up the node's file descriptors, and
// websockets do not count.
func TestHTTPConnsPerIPCap(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.MaxHTTPConnsPerIP = 4
	n := startNode(t, opts)
	ws := dialRaw(t, n, 4, "", "") // upgraded: not counted
	addr := strings.TrimPrefix(n.url, "http://")
	var idle []net.Conn
	for i := 0; i < opts.MaxHTTPConnsPerIP; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if status, _ := bufio.NewReader(c).ReadString('\n'); !strings.Contains(status, "200") {
			t.Fatalf("connection %d: %q", i, status)
		}
		idle = append(idle, c) // kept alive, idle
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	fmt.Fprintf(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(over).ReadString('\n'); !closedByPeer(err) {
		t.Fatalf("a connection over the cap: got %q, %v; want it closed", line, err)
	}
	idle[0].Close()
	waitFor(t, 5*time.Second, "a slot back", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.Contains(line, "200")
	})
	ws.send(`421["presence:sync"]`)
	ws.ack(1)
}

// An idle websocket session costs one goroutine (its reader) on the node:
// no writer while nothing is queued, nothing left of the upgrade request.
func TestIdleWebsocketOneGoroutine(t *testing.T) {
	n := startNode(t, testOptions(t))
	addr := strings.TrimPrefix(n.url, "http://")
	const conns = 200
	open := func(v int) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /socket.io/?EIO=%d&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"+
			"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", v)
		return c
	}
	warm := open(4) // let the node's own goroutines settle
	_ = warm
	waitFor(t, 5*time.Second, "the first session", func() bool { return n.srv.eng.Len() == 1 })
	before := runtime.NumGoroutine()
	for i := 0; i < conns; i++ {
		open(versions[i%2])
	}
	waitFor(t, 10*time.Second, "all sessions", func() bool { return n.srv.eng.Len() == conns+1 })
	var got int
	waitFor(t, 10*time.Second, "writers done", func() bool {
		got = runtime.NumGoroutine() - before
		return got <= conns+conns/20
	})
	if got < conns {
		t.Fatalf("%d goroutines for %d sessions; the count is off", got, conns)
	}
}

// A polling client in a busy room gets everything queued in each poll and is
// never dropped: many events arrive in one response.
func TestPollingClientInBusyRoom(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Rates = RateLimits{Chat: Rate{PerSecond: 1e6, Burst: 1e6}, Other: Rate{PerSecond: 100, Burst: 100}}
	opts.Presence.TTL = time.Minute // no heartbeats: the sender stays joined however slow the machine
	n := startNode(t, opts)
	sender := dial(t, n)
	join(t, sender, "busy", "sender", nil)
	for _, v := range versions {
		p := openPolling(t, n.url, v)
		p.post(`420["presence:join",{"roomId":"busy","userId":"poller"}]`)
		p.ack(0)
		const msgs = 500
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // 500 round trips on a busy machine
		defer cancel()
		for i := 0; i < msgs; i++ {
			if _, _, err := sender.Chat(ctx, fmt.Sprint("m", i)); err != nil {
				t.Fatal(err)
			}
		}
		got, most := 0, 0
		for deadline := time.Now().Add(10 * time.Second); got < msgs && time.Now().Before(deadline); {
			k := 0
			for _, pk := range p.get() {
				if strings.HasPrefix(pk, `42["chat:message"`) {
					k++
				}
			}
			got, most = got+k, max(most, k)
		}
		if got != msgs || most < 2 {
			t.Fatalf("EIO=%d: got %d of %d messages, at most %d per poll", v, got, msgs, most)
		}
		p.post(`421["presence:leave"]`)
	}
}

// Shutdown with handshakes, polls and upgrades in flight neither hangs nor
// panics, and leaves no session behind.
func TestShutdownWithHandshakesInFlight(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.ShutdownTimeout = 5 * time.Second
	n := startNode(t, opts)
	p := openPolling(t, n.url, 4)
	parked := make(chan error, 1)
	go func() {
		resp, err := http.Get(p.url + "&sid=" + p.sid)
		if err == nil {
			resp.Body.Close()
		}
		parked <- err
	}()
	sock := n.srv.socket(p.sid)
	waitFor(t, 5*time.Second, "the poll parked", func() bool {
		sock.sess.wmu.Lock()
		defer sock.sess.wmu.Unlock()
		return sock.sess.poll != nil
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := versions[g%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				if g%2 == 0 {
					resp, err := http.Get(fmt.Sprintf("%s/socket.io/?EIO=%d&transport=polling", n.url, v))
					if err == nil {
						resp.Body.Close()
					}
					continue
				}
				u := fmt.Sprintf("ws%s/socket.io/?EIO=%d&transport=websocket", strings.TrimPrefix(n.url, "http"), v)
				if c, _, err := websocket.DefaultDialer.Dial(u, nil); err == nil {
					_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
					c.Close()
				}
			}
		}()
	}
	waitFor(t, 5*time.Second, "handshakes in flight", func() bool { return n.srv.eng.Len() > 5 })
	start := time.Now()
	n.stop() // fails the test if Run returns an error or takes over 15 s
	close(stop)
	wg.Wait()
	if took := time.Since(start); took > opts.ShutdownTimeout {
		t.Fatalf("shutdown took %v", took)
	}
	select {
	case <-parked:
	case <-time.After(5 * time.Second):
		t.Fatal("a parked poll outlived the shutdown")
	}
	if got := n.srv.eng.Len(); got != 0 {
		t.Fatalf("%d sessions left after shutdown", got)
	}
}

// The origin allowlist holds on both transports and in both versions,
// preflight included.
func TestOriginAllowlistBothVersions(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.AllowedOrigins = []string{"https://a.example"}
	n := startNode(t, opts)
	for _, v := range versions {
		for origin, want := range map[string]int{"https://a.example": 200, "https://a.example.evil.com": 403, "": 200} {
			for _, method := range []string{"GET", "OPTIONS"} {
				req, _ := http.NewRequest(method, fmt.Sprintf("%s/socket.io/?EIO=%d&transport=polling", n.url, v), nil)
				if origin != "" {
					req.Header.Set("Origin", origin)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				wantHere := want
				if method == "OPTIONS" && want == 200 {
					wantHere = 204
				}
				if resp.StatusCode != wantHere {
					t.Errorf("EIO=%d %s from %q: HTTP %d; want %d", v, method, origin, resp.StatusCode, wantHere)
				}
				if want != 403 && origin != "" && resp.Header.Get("Access-Control-Allow-Origin") != origin {
					t.Errorf("EIO=%d %s from %q: no CORS header", v, method, origin)
				}
			}
			h := http.Header{}
			if origin != "" {
				h.Set("Origin", origin)
			}
			u := fmt.Sprintf("ws%s/socket.io/?EIO=%d&transport=websocket", strings.TrimPrefix(n.url, "http"), v)
			c, resp, err := websocket.DefaultDialer.Dial(u, h)
			if c != nil {
				c.Close()
			}
			if got := 101; err != nil {
				got = resp.StatusCode
				if got != want {
					t.Errorf("EIO=%d websocket from %q: HTTP %d; want %d", v, origin, got, want)
				}
			} else if want != 200 {
				t.Errorf("EIO=%d websocket from %q: upgraded; want %d", v, origin, want)
			}
		}
	}
}

// decodeEvent agrees with encoding/json on the name and first argument.
func TestDecodeEvent(t *testing.T) {
	for in, want := range map[string]string{
		`["a"]`: `a|`,
		` [ "a" , {"k":[1,"]",{"x":"}"}]} , 2 ] `: `a|{"k":[1,"]",{"x":"}"}]}`,
		`["a\"b\u00e9",true]`:                     `a"bé|true`,
		`["presence:join",{"roomId":"r"}]`:        `presence:join|{"roomId":"r"}`,
		`["x",-1.5e3,null]`:                       `x|-1.5e3`,
		`["x","s\\"]`:                             `x|"s\\"`,
		`[1]`:                                     `!`,
		`[]`:                                      `!`,
		`{"a":1}`:                                 `!`,
		`["x",]`:                                  `!`,
		`["x"`:                                    `!`,
		`"x"`:                                     `!`,
	} {
		name, arg, err := decodeEvent([]byte(in))
		got := name + "|" + string(arg)
		if err != nil {
			got = "!"
		}
		if got != want {
			t.Errorf("decodeEvent(%s) = %s; want %s", in, got, want)
		}
	}
}

// wsPair returns a frame reader on the server end of a loopback TCP
// connection, bounding messages at limit bytes, and the client end.
func wsPair(t *testing.T, limit int) (*wsReader, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	r := newWSReader(newWSConn(server), limit)
	if r.raw == nil {
		t.Fatal("a TCP connection's reader has no syscall.RawConn")
	}
	// No test waits long on either end: a reader that waits for bytes that
	// never come fails the test instead of hanging it.
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	return r, client
}

// clientFrame returns one client frame: masked (key 1 2 3 4), with the
// given first byte (FIN, RSV and opcode bits) and payload.
func clientFrame(b0 byte, payload string) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = binary.BigEndian.AppendUint16(append(f, 0x80|126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 0x80|127), uint64(n))
	}
	key := []byte{1, 2, 3, 4}
	f = append(f, key...)
	for i := 0; i < len(payload); i++ {
		f = append(f, payload[i]^key[i&3])
	}
	return f
}

// serverFrame reads one (unmasked, unfragmented) frame from the server.
func serverFrame(t *testing.T, c net.Conn) (op byte, payload []byte) {
	t.Helper()
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("reading the server's frame: %v", err)
	}
	if hdr[0]&0x80 == 0 || hdr[1]&0x80 != 0 || hdr[1]&0x7f > 125 {
		t.Fatalf("got frame header %x; want a final, unmasked, short frame", hdr)
	}
	payload = make([]byte, hdr[1]&0x7f)
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Fatalf("reading the server's frame: %v", err)
	}
	return hdr[0] & 0x0f, payload
}

func wantMessage(t *testing.T, r *wsReader, want string) {
	t.Helper()
	msg, err := r.next()
	if err != nil || string(msg) != want {
		t.Fatalf("got %.40q, %v; want %.40q", msg, err, want)
	}
}

// The frame reader assembles a fragmented message, answers a ping sent
// between its fragments, ignores pongs, returns several messages from one
// read in order and a large message from many, and holds no buffer once
// it waits for a silent client.
func TestWSReaderMessages(t *testing.T) {
	r, c := wsPair(t, 64<<10)
	var out []byte
	out = append(out, clientFrame(0x01, "he")...)    // text, not final
	out = append(out, clientFrame(0x00, "ll")...)    // continuation
	out = append(out, clientFrame(0x89, "pi")...)    // ping between fragments
	out = append(out, clientFrame(0x8a, "po")...)    // pong: ignored
	out = append(out, clientFrame(0x80, "o")...)     // final continuation
	out = append(out, clientFrame(0x81, "42")...)    // whole text
	out = append(out, clientFrame(0x81, "ü€")...)    // whole text, not ASCII
	out = append(out, clientFrame(0x01, "ü\xe2")...) // "ü€" split inside the euro sign
	out = append(out, clientFrame(0x80, "\x82\xac")...)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	wantMessage(t, r, "hello")
	if op, p := serverFrame(t, c); op != wsPong || string(p) != "pi" {
		t.Fatalf("got op %x %q; want a pong with the ping's payload", op, p)
	}
	wantMessage(t, r, "42")
	wantMessage(t, r, "ü€")
	wantMessage(t, r, "ü€")

	big := strings.Repeat("0123456789abcdef", 4000) // 64,000 bytes, written in pieces
	go func() {
		f := clientFrame(0x81, big)
		for len(f) > 0 {
			k := min(len(f), 1000)
			if _, err := c.Write(f[:k]); err != nil {
				return
			}
			f = f[k:]
		}
	}()
	wantMessage(t, r, big)

	_ = r.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.next(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v from a silent client; want the read deadline", err)
	}
	if r.in != nil || r.msg != nil {
		t.Fatalf("the reader holds a buffer while it waits (in %v, msg %v)", r.in != nil, r.msg != nil)
	}
}

// A reader that takes binary messages (the conformance echo mode) returns
// each, whole or fragmented, as an Engine.IO v4 binary packet ("b" and
// base64), still checks text messages, and the writer sends such a packet
// back as a binary frame of its data. Binary frames are refused otherwise
// (TestWSReaderRefuses).
func TestWSReaderBinaryEcho(t *testing.T) {
	r, c := wsPair(t, 1024)
	r.binary = true
	var out []byte
	out = append(out, clientFrame(0x82, "\x01\x02\x03\x04")...)
	out = append(out, clientFrame(0x02, "\xff")...) // binary, not final
	out = append(out, clientFrame(0x80, "\x00")...)
	out = append(out, clientFrame(0x81, "4ü")...)
	out = append(out, clientFrame(0x81, "4\xff")...)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	wantMessage(t, r, "bAQIDBA==")
	wantMessage(t, r, "b/wA=")
	wantMessage(t, r, "4ü")
	if msg, err := r.next(); !errors.Is(err, errWSBadUTF8) {
		t.Fatalf("got %q, %v; want errWSBadUTF8", msg, err)
	}
	var b bytes.Buffer
	appendWSFrame(&b, []byte("bAQIDBA=="), 4)
	appendWSFrame(&b, []byte("4hello"), 4)
	if got, want := b.String(), "\x82\x04\x01\x02\x03\x04\x81\x064hello"; got != want {
		t.Fatalf("got frames %q; want %q", got, want)
	}
}

// A valid close frame is echoed with its status code (an empty one with
// an empty body), the reader ends, and nothing the client sent after the
// close frame is read (RFC 6455 sections 5.5.1 and 7.4).
func TestWSReaderCloseHandshake(t *testing.T) {
	for name, body := range map[string]string{
		"1000 with reason": "\x03\xe8bye",
		"1001":             "\x03\xe9",
		"1003":             "\x03\xeb",
		"1007 reason ü":    "\x03\xefü",
		"1011":             "\x03\xf3",
		"1014":             "\x03\xf6",
		"3000":             "\x0b\xb8",
		"4999":             "\x13\x87",
		"empty":            "",
	} {
		t.Run(name, func(t *testing.T) {
			r, c := wsPair(t, 1024)
			f := append(clientFrame(0x88, body), clientFrame(0x81, "42")...) // a message after the close
			if _, err := c.Write(f); err != nil {
				t.Fatal(err)
			}
			if msg, err := r.next(); !errors.Is(err, errWSClosed) {
				t.Fatalf("got %q, %v; want errWSClosed", msg, err)
			}
			want := body[:min(2, len(body))]
			if op, p := serverFrame(t, c); op != wsClose || string(p) != want {
				t.Fatalf("got op %x %x; want a close frame with body %x", op, p, want)
			}
			if err := r.nc.writeText([]byte("4x")); !errors.Is(err, errWSCloseSent) {
				t.Fatalf("a data frame after the close frame: got %v; want errWSCloseSent", err)
			}
		})
	}
}

// Frames the engine does not accept end the reader with a close frame
// carrying the matching status; an oversize frame is refused from its
// header, before its payload is sent.
func TestWSReaderRefuses(t *testing.T) {
	huge := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0xa0, 0, 0} // 10 MB text, header only
	for name, tt := range map[string]struct {
		frames [][]byte
		want   error
		code   uint16
	}{
		"unmasked":              {[][]byte{{0x81, 0x02, 'h', 'i'}}, errWSProtocol, wsCloseProtocol},
		"binary":                {[][]byte{clientFrame(0x82, "hi")}, errWSBinary, wsCloseUnsupported},
		"rsv bit":               {[][]byte{clientFrame(0xc1, "hi")}, errWSProtocol, wsCloseProtocol},
		"unknown opcode":        {[][]byte{clientFrame(0x83, "hi")}, errWSProtocol, wsCloseProtocol},
		"unknown control":       {[][]byte{clientFrame(0x8b, "hi")}, errWSProtocol, wsCloseProtocol},
		"lone continuation":     {[][]byte{clientFrame(0x80, "hi")}, errWSProtocol, wsCloseProtocol},
		"text inside fragments": {[][]byte{clientFrame(0x01, "h"), clientFrame(0x81, "i")}, errWSProtocol, wsCloseProtocol},
		"fragmented ping":       {[][]byte{clientFrame(0x09, "p")}, errWSProtocol, wsCloseProtocol},
		"long ping":             {[][]byte{clientFrame(0x89, strings.Repeat("p", 126))}, errWSProtocol, wsCloseProtocol},
		"huge frame header":     {[][]byte{append(huge, 1, 2, 3, 4)}, errWSTooLarge, wsCloseTooBig},
		"frame over the limit":  {[][]byte{clientFrame(0x81, strings.Repeat("a", 1025))}, errWSTooLarge, wsCloseTooBig},
		"fragments over the limit": {[][]byte{clientFrame(0x01, strings.Repeat("a", 600)),
			clientFrame(0x80, strings.Repeat("a", 600))}, errWSTooLarge, wsCloseTooBig},
		"text not utf-8":         {[][]byte{clientFrame(0x81, "4\xff")}, errWSBadUTF8, wsCloseBadData},
		"text surrogate half":    {[][]byte{clientFrame(0x81, "4\xed\xa0\x80")}, errWSBadUTF8, wsCloseBadData},
		"text truncated rune":    {[][]byte{clientFrame(0x81, "4\xe2\x82")}, errWSBadUTF8, wsCloseBadData},
		"fragments not utf-8":    {[][]byte{clientFrame(0x01, "4\xe2"), clientFrame(0x80, "\x28\xa1")}, errWSBadUTF8, wsCloseBadData},
		"fragments end mid-rune": {[][]byte{clientFrame(0x01, "4ü"), clientFrame(0x80, "\xe2\x82")}, errWSBadUTF8, wsCloseBadData},
		"close 1-byte body":      {[][]byte{clientFrame(0x88, "\x03")}, errWSProtocol, wsCloseProtocol},
		"close 0":                {[][]byte{clientFrame(0x88, "\x00\x00")}, errWSProtocol, wsCloseProtocol},
		"close 999":              {[][]byte{clientFrame(0x88, "\x03\xe7")}, errWSProtocol, wsCloseProtocol},
		"close 1004":             {[][]byte{clientFrame(0x88, "\x03\xec")}, errWSProtocol, wsCloseProtocol},
		"close 1005":             {[][]byte{clientFrame(0x88, "\x03\xed")}, errWSProtocol, wsCloseProtocol},
		"close 1006":             {[][]byte{clientFrame(0x88, "\x03\xee")}, errWSProtocol, wsCloseProtocol},
		"close 1015":             {[][]byte{clientFrame(0x88, "\x03\xf7")}, errWSProtocol, wsCloseProtocol},
		"close 1016":             {[][]byte{clientFrame(0x88, "\x03\xf8")}, errWSProtocol, wsCloseProtocol},
		"close 2000":             {[][]byte{clientFrame(0x88, "\x07\xd0")}, errWSProtocol, wsCloseProtocol},
		"close 2999":             {[][]byte{clientFrame(0x88, "\x0b\xb7")}, errWSProtocol, wsCloseProtocol},
		"close 5000":             {[][]byte{clientFrame(0x88, "\x13\x88")}, errWSProtocol, wsCloseProtocol},
		"close 65535":            {[][]byte{clientFrame(0x88, "\xff\xff")}, errWSProtocol, wsCloseProtocol},
		"close reason not utf-8": {[][]byte{clientFrame(0x88, "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")}, errWSProtocol, wsCloseProtocol},
	} {
		t.Run(name, func(t *testing.T) {
			r, c := wsPair(t, 1024)
			for _, f := range tt.frames {
				if _, err := c.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			_, err := r.next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			r.refuse(err)
			op, p := serverFrame(t, c)
			if op != wsClose || len(p) != 2 || binary.BigEndian.Uint16(p) != tt.code {
				t.Fatalf("got op %x %x; want a close frame with status %d", op, p, tt.code)
			}
			if err := r.nc.writeText([]byte("4x")); !errors.Is(err, errWSCloseSent) {
				t.Fatalf("a data frame after the close frame: got %v; want errWSCloseSent", err)
			}
		})
	}
}

// On a live session, the server's close frame is the last frame it sends:
// events the client sent before its close frame may still be answered before
// it, none after it (RFC 6455 section 5.5.1), the messages that follow the
// close frame are not handled, and the connection ends.
func TestNoDataFrameAfterClose(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t))
	for _, v := range versions {
		for name, tail := range map[string]string{
			"close only":          "",
			"close then event":    `422["presence:sync"]`,
			"close then v3 ping":  "2",
			"close then bad json": `42[`,
		} {
			r := dialRaw(t, n, v, "", "")
			nc := r.c.UnderlyingConn()
			var out []byte
			for range 20 { // answered on the writer, racing with the close
				out = append(out, clientFrame(0x81, `421["presence:sync"]`)...)
			}
			out = append(out, clientFrame(0x88, "\x03\xe8")...)
			if tail != "" {
				out = append(out, clientFrame(0x81, tail)...)
			}
			if _, err := nc.Write(out); err != nil {
				t.Fatal(err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(nc)
			var closeAt, acks int
			for i := 0; ; i++ {
				op, payload, err := readServerFrame(br)
				if err != nil {
					if closeAt == 0 {
						t.Fatalf("EIO=%d %s: %v before the close frame", v, name, err)
					}
					break
				}
				if closeAt != 0 {
					t.Fatalf("EIO=%d %s: got frame %x %q after the close frame", v, name, op, payload)
				}
				switch {
				case op == wsClose:
					if string(payload) != "\x03\xe8" {
						t.Fatalf("EIO=%d %s: got close %x; want 1000 echoed", v, name, payload)
					}
					closeAt = i + 1
				case strings.HasPrefix(string(payload), "432["):
					t.Fatalf("EIO=%d %s: the event after the close frame was handled", v, name)
				case strings.HasPrefix(string(payload), "431["):
					acks++
				}
			}
			if acks > 20 {
				t.Fatalf("EIO=%d %s: got %d acks; want at most 20", v, name, acks)
			}
		}
	}
}

// readServerFrame reads one unmasked, unfragmented server frame.
func readServerFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil || hdr[1]&0x80 != 0 || n > 1<<20 {
		return 0, nil, fmt.Errorf("bad frame header %x: %v", hdr, err)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return hdr[0] & 0x0f, payload, err
}

// BenchmarkWSRead reads small text messages (a heartbeat's size) from a
// loopback websocket, with the engine's frame reader and, for comparison,
// with gorilla's Conn as the engine used it before (NextReader, then the
// message copied into a pooled buffer). The client writes 32 frames per
// write.
func BenchmarkWSRead(b *testing.B) {
	pk := `42["presence:heartbeat",{"roomId":"room-0001","state":{"typing":false}}]`
	var burst []byte
	for range 32 {
		burst = append(burst, clientFrame(0x81, pk)...)
	}
	for name, read := range map[string]func(*websocket.Conn, int) error{
		"engine": func(c *websocket.Conn, n int) error {
			r := newWSReader(newWSConn(c.UnderlyingConn()), 64<<10)
			defer r.release()
			for range n {
				if msg, err := r.next(); err != nil || len(msg) != len(pk) {
					return fmt.Errorf("got %q, %v", msg, err)
				}
			}
			return nil
		},
		"gorilla": func(c *websocket.Conn, n int) error {
			c.SetReadLimit(64 << 10)
			for range n {
				_, rd, err := c.NextReader()
				if err != nil {
					return err
				}
				buf := getBuf()
				_, err = buf.ReadFrom(rd)
				k := buf.Len()
				putBuf(buf)
				if err != nil || k != len(pk) {
					return fmt.Errorf("got %d bytes, %v", k, err)
				}
			}
			return nil
		},
	} {
		b.Run(name, func(b *testing.B) {
			done := make(chan error, 1)
			up := websocket.Upgrader{ReadBufferSize: 512, WriteBufferPool: &sync.Pool{}}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := up.Upgrade(w, r, nil)
				if err != nil {
					done <- err
					return
				}
				done <- read(c, b.N)
			}))
			defer srv.Close()
			c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			nc := c.UnderlyingConn()
			b.ReportAllocs()
			b.SetBytes(int64(len(pk)))
			b.ResetTimer()
			for sent := 0; sent < b.N; sent += 32 {
				f := burst[:min(32, b.N-sent)*len(burst)/32]
				if _, err := nc.Write(f); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// A client that reads is not dropped for a burst over the queue's bound: the
// bound drops only a client that takes nothing for a while (or lets four
// times the bound pile up).
func TestBurstDoesNotDropAReader(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.OutboundQueueBytes = 64 << 10
	n := startNode(t, opts)
	for _, v := range versions {
		c := dial(t, n, client.Options{Protocol: v})
		var sock *Socket
		waitFor(t, 5*time.Second, "the socket registered", func() bool { sock = n.srv.socket(c.ID()); return sock != nil })
		payload := json.RawMessage(`"` + strings.Repeat("x", 1000) + `"`)
		const burst = 200 // about 200 KB at once: over the bound, under four times it
		for i := 0; i < burst; i++ {
			if !sock.Send("burst", payload) {
				t.Fatalf("EIO=%d: dropped at message %d of a burst", v, i)
			}
		}
		for i := 0; i < burst; i++ {
			if e := nextEvent(t, c, 10*time.Second); e.Name != "burst" {
				t.Fatalf("got %s", e.Name)
			}
		}
	}
}
