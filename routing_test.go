package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"rtm/client"
)

// router is a test module that lets its clients drive the routing API:
// test:join and test:leave put the socket in rooms, test:emit builds a
// Broadcast from the payload and emits (or disconnects).
type router struct{ mc *ModuleContext }

func (r *router) Name() string { return "test" }

func (r *router) Register(mc *ModuleContext) error {
	r.mc = mc
	mc.Handle("test:join", func(ctx context.Context, s *Socket, raw json.RawMessage) (any, error) {
		var p struct{ Rooms []string }
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, InvalidPayload(err.Error())
		}
		for _, room := range p.Rooms {
			if err := s.Join(ctx, room); err != nil {
				return nil, err
			}
		}
		return map[string]any{"rooms": s.Rooms()}, nil
	})
	mc.Handle("test:leave", func(_ context.Context, s *Socket, raw json.RawMessage) (any, error) {
		var p struct{ Room string }
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, InvalidPayload(err.Error())
		}
		return map[string]any{"removed": s.Leave(p.Room)}, nil
	})
	mc.Handle("test:emit", func(ctx context.Context, _ *Socket, raw json.RawMessage) (any, error) {
		var p struct {
			Rooms, Users, Sockets, Except, ExceptSockets []string
			Event                                        string
			Data                                         json.RawMessage
			Disconnect                                   bool
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, InvalidPayload(err.Error())
		}
		b := r.mc.To(p.Rooms...).ToUser(p.Users...).ToSocket(p.Sockets...).Except(p.Except...).ExceptSocket(p.ExceptSockets...)
		if p.Disconnect {
			return nil, b.Disconnect(ctx)
		}
		return nil, b.Emit(ctx, p.Event, p.Data)
	})
	return nil
}

// emitReq is test:emit's payload.
type emitReq struct {
	Rooms         []string        `json:"rooms,omitempty"`
	Users         []string        `json:"users,omitempty"`
	Sockets       []string        `json:"sockets,omitempty"`
	Except        []string        `json:"except,omitempty"`
	ExceptSockets []string        `json:"exceptSockets,omitempty"`
	Event         string          `json:"event,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
	Disconnect    bool            `json:"disconnect,omitempty"`
}

func routeCall(t *testing.T, c *client.Conn, event string, payload any) json.RawMessage {
	t.Helper()
	raw, err := c.Call(tctx(t), event, payload)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	var ack struct{ OK bool }
	if json.Unmarshal(raw, &ack) != nil || !ack.OK {
		t.Fatalf("%s %v: ack %s", event, payload, raw)
	}
	return raw
}

// joinRooms puts c in rooms through the router module.
func joinRooms(t *testing.T, c *client.Conn, rooms ...string) {
	t.Helper()
	routeCall(t, c, "test:join", map[string]any{"rooms": rooms})
}

// received returns the names of the events c receives until (and without)
// the event named end, failing after 5 s.
func received(t *testing.T, c *client.Conn, end string) []string {
	t.Helper()
	var got []string
	for {
		e := nextEvent(t, c, 5*time.Second)
		if e.Name == end {
			return got
		}
		if strings.HasPrefix(e.Name, "m") {
			got = append(got, e.Name)
		}
	}
}

// receivedAll is received with several end markers, sent through rooms of
// different buckets: the events before all of them, sorted by name.
func receivedAll(t *testing.T, c *client.Conn, ends ...string) []string {
	t.Helper()
	var got []string
	for left := slices.Clone(ends); len(left) > 0; {
		e := nextEvent(t, c, 5*time.Second)
		if i := slices.Index(left, e.Name); i >= 0 {
			left = slices.Delete(left, i, i+1)
		} else if strings.HasPrefix(e.Name, "m") {
			got = append(got, e.Name)
		}
	}
	slices.Sort(got)
	return got
}

// roomsInDistinctBuckets returns n room names whose buckets differ from each
// other and from avoid.
func roomsInDistinctBuckets(n int, avoid ...int) []string {
	used := map[int]bool{}
	for _, b := range avoid {
		used[b] = true
	}
	var out []string
	for i := 0; len(out) < n; i++ {
		r := fmt.Sprint("room-", i)
		if !used[roomBucket(r)] {
			used[roomBucket(r)] = true
			out = append(out, r)
		}
	}
	return out
}

func homeBucket(n *testNode) int { return n.srv.eng.opts.homeBucket }

// A socket in three rooms gets each room's message once, a message to two
// of its rooms once; Except leaves out a room's sockets, ExceptSocket one
// socket. Two nodes, both client generations (dial alternates them).
func TestRoutingRooms(t *testing.T) { backends(t, testRoutingRooms) }

func testRoutingRooms(t *testing.T, opts ServerOptions) {
	n1, n2 := startNode(t, opts, &router{}), startNode(t, opts, &router{})
	rs := roomsInDistinctBuckets(3)
	a, b, c := rs[0], rs[1], rs[2]
	s1, s3 := dial(t, n1), dial(t, n1)
	s2, sender := dial(t, n2), dial(t, n2)
	joinRooms(t, s1, a, b, c)
	joinRooms(t, s2, a)
	joinRooms(t, s3, b)
	var rooms struct{ Rooms []string }
	_ = json.Unmarshal(routeCall(t, s1, "test:join", map[string]any{"rooms": []string{a}}), &rooms)
	slices.Sort(rooms.Rooms)
	if want := []string{a, b, c}; !slices.Equal(rooms.Rooms, want) {
		t.Fatalf("Rooms() = %v; want %v", rooms.Rooms, want)
	}
	emit := func(e emitReq) { routeCall(t, sender, "test:emit", e) }
	emit(emitReq{Rooms: []string{a}, Event: "m1"})
	emit(emitReq{Rooms: []string{a, b}, Event: "m2"})
	emit(emitReq{Rooms: []string{a, b, c}, Except: []string{b}, Event: "m3"})
	emit(emitReq{Rooms: []string{a}, ExceptSockets: []string{s2.ID()}, Event: "m4"})
	emit(emitReq{Rooms: []string{a, b, c}, Event: "end"})
	for _, tc := range []struct {
		name string
		c    *client.Conn
		want []string
	}{
		{"s1 (rooms a, b, c)", s1, []string{"m1", "m2", "m4"}},
		{"s2 (room a, other node)", s2, []string{"m1", "m2", "m3"}},
		{"s3 (room b)", s3, []string{"m2"}},
	} {
		if got := received(t, tc.c, "end"); !slices.Equal(got, tc.want) {
			t.Errorf("%s got %v; want %v", tc.name, got, tc.want)
		}
	}
	// Leaving a room stops its messages; the others still arrive.
	routeCall(t, s1, "test:leave", map[string]any{"room": a})
	emit(emitReq{Rooms: []string{a}, Event: "m5"})
	emit(emitReq{Rooms: []string{b}, Event: "m6"})
	emit(emitReq{Rooms: []string{a, b, c}, Event: "end"})
	if got := received(t, s1, "end"); !slices.Equal(got, []string{"m6"}) {
		t.Errorf("s1 after leaving a got %v; want [m6]", got)
	}
}

// A user's tabs on two nodes all get a message to the user, once each; one
// socket on another node is reached by its id; disconnecting a user cuts
// every tab and nobody else.
func TestRoutingUsersAndSockets(t *testing.T) { backends(t, testRoutingUsersAndSockets) }

func testRoutingUsersAndSockets(t *testing.T, opts ServerOptions) {
	opts.JWTSecret = []byte(testSecret)
	n1, n2 := startNode(t, opts, &router{}), startNode(t, opts, &router{})
	tok := func(sub string) client.Options {
		return client.Options{Token: signHS(t, testSecret, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})}
	}
	a1, a2, a3 := dial(t, n1, tok("alice")), dial(t, n1, tok("alice")), dial(t, n2, tok("alice"))
	bob := dial(t, n2, tok("bob"))
	emit := func(from *client.Conn, e emitReq) { routeCall(t, from, "test:emit", e) }
	emit(bob, emitReq{Users: []string{"alice"}, Event: "m-user"})
	emit(a1, emitReq{Sockets: []string{a3.ID()}, Event: "m-socket"})
	// Order holds per room, not across rooms of different buckets (on a
	// cluster, different shards): one end marker behind each room used.
	emit(a1, emitReq{Users: []string{"alice", "bob"}, Event: "end"})
	emit(a1, emitReq{Sockets: []string{a3.ID()}, Event: "end-s"})
	for name, tc := range map[string]struct {
		c    *client.Conn
		ends []string
		want []string
	}{
		"alice's tab 1": {a1, []string{"end"}, []string{"m-user"}},
		"alice's tab 2": {a2, []string{"end"}, []string{"m-user"}},
		"alice's tab 3": {a3, []string{"end", "end-s"}, []string{"m-socket", "m-user"}},
		"bob":           {bob, []string{"end"}, nil},
	} {
		if got := receivedAll(t, tc.c, tc.ends...); !slices.Equal(got, tc.want) {
			t.Errorf("%s got %v; want %v", name, got, tc.want)
		}
	}
	emit(bob, emitReq{Users: []string{"alice"}, Disconnect: true})
	for i, c := range []*client.Conn{a1, a2, a3} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("alice's tab %d is still connected", i+1)
		}
	}
	emit(bob, emitReq{Users: []string{"bob"}, Event: "end"}) // bob is still there
	if got := received(t, bob, "end"); len(got) != 0 {
		t.Fatalf("bob got %v", got)
	}
}

// Without tokens, a socket's user is its presence join's userId, until it
// leaves.
func TestUserFromPresenceJoin(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t), &router{})
	c, other := dial(t, n), dial(t, n)
	join(t, c, "r", "carol", nil)
	routeCall(t, other, "test:emit", emitReq{Users: []string{"carol"}, Event: "m1"})
	// The emit returns once published; carol leaves once it has arrived.
	if got := received(t, c, "m1"); len(got) != 0 {
		t.Fatalf("carol got %v before m1", got)
	}
	if _, err := c.Leave(tctx(t)); err != nil {
		t.Fatal(err)
	}
	routeCall(t, other, "test:emit", emitReq{Users: []string{"carol"}, Event: "m2"})
	routeCall(t, other, "test:emit", emitReq{Sockets: []string{c.ID()}, Event: "end"})
	if got := received(t, c, "end"); len(got) != 0 {
		t.Fatalf("carol got %v after m1; want nothing (m2 was sent after she left)", got)
	}
}

// post sends a JSON body to the node's API with token (none when "").
func post(t *testing.T, n *testNode, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(tctx(t), http.MethodPost, n.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// The backend emit endpoints: a good token reaches rooms, users and sockets
// on the other node; a missing or wrong token is 401, a bad id, event or
// body 400, a reserved event 400, a body over the limit 413.
func TestEmitAPI(t *testing.T) { backends(t, testEmitAPI) }

func testEmitAPI(t *testing.T, opts ServerOptions) {
	opts.APIToken = "api-secret"
	opts.MaxMessageBytes = 2048
	n1, n2 := startNode(t, opts, &router{}), startNode(t, opts, &router{})
	c := dial(t, n1)
	joinRooms(t, c, "news")
	join(t, c, "doc", "dora", nil) // without tokens, presence says who the socket is
	for path, body := range map[string]string{
		"/v1/rooms/news/emit":                                 `{"event":"m-room","data":{"x":1}}`,
		"/v1/users/dora/emit":                                 `{"event":"m-user","data":"hi"}`,
		"/v1/sockets/" + c.ID() + "/emit":                     `{"event":"m-socket"}`,
		"/v1/rooms/" + url.PathEscape("ünïcode-房间") + "/emit": `{"event":"m-nobody","data":[1,2]}`,
	} {
		if code, resp := post(t, n2, path, "api-secret", body); code != http.StatusOK || resp != `{"ok":true}` {
			t.Fatalf("POST %s: %d %s; want 200 {\"ok\":true}", path, code, resp)
		}
	}
	got := map[string]string{}
	for len(got) < 3 {
		e := nextEvent(t, c, 5*time.Second)
		if strings.HasPrefix(e.Name, "m-") {
			got[e.Name] = strings.Join(func() []string {
				var s []string
				for _, a := range e.Args {
					s = append(s, string(a))
				}
				return s
			}(), ",")
		}
	}
	if want := map[string]string{"m-room": `{"x":1}`, "m-user": `"hi"`, "m-socket": ""}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the socket got %v; want %v", got, want)
	}
	big := `{"event":"m","data":"` + strings.Repeat("x", opts.MaxMessageBytes) + `"}`
	for name, tc := range map[string]struct {
		path, token, body string
		want              int
	}{
		"missing token":   {"/v1/rooms/news/emit", "", `{"event":"m"}`, http.StatusUnauthorized},
		"wrong token":     {"/v1/rooms/news/emit", "nope", `{"event":"m"}`, http.StatusUnauthorized},
		"bad room":        {"/v1/rooms/a%7Bb/emit", "api-secret", `{"event":"m"}`, http.StatusBadRequest},
		"bad socket id":   {"/v1/sockets/short/emit", "api-secret", `{"event":"m"}`, http.StatusBadRequest},
		"no event":        {"/v1/rooms/news/emit", "api-secret", `{"data":1}`, http.StatusBadRequest},
		"reserved event":  {"/v1/rooms/news/emit", "api-secret", `{"event":"presence:event"}`, http.StatusBadRequest},
		"socket.io event": {"/v1/rooms/news/emit", "api-secret", `{"event":"disconnect"}`, http.StatusBadRequest},
		"not an object":   {"/v1/rooms/news/emit", "api-secret", `["m"]`, http.StatusBadRequest},
		"not JSON":        {"/v1/rooms/news/emit", "api-secret", `{"event":`, http.StatusBadRequest},
		"unknown field":   {"/v1/rooms/news/emit", "api-secret", `{"event":"m","payload":1}`, http.StatusBadRequest},
		"oversized body":  {"/v1/rooms/news/emit", "api-secret", big, http.StatusRequestEntityTooLarge},
	} {
		if code, resp := post(t, n2, tc.path, tc.token, tc.body); code != tc.want {
			t.Errorf("%s: HTTP %d %s; want %d", name, code, resp, tc.want)
		}
	}
	// None of the refused requests reached the socket.
	if code, _ := post(t, n2, "/v1/sockets/"+c.ID()+"/emit", "api-secret", `{"event":"end"}`); code != http.StatusOK {
		t.Fatalf("end marker: %d", code)
	}
	if got := received(t, c, "end"); len(got) != 0 {
		t.Fatalf("refused requests delivered %v", got)
	}
	// A user disconnected from the API is cut.
	if code, _ := post(t, n2, "/v1/users/dora/disconnect", "api-secret", ""); code != http.StatusOK {
		t.Fatalf("disconnect: %d", code)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("dora is still connected")
	}
}

// The Go emitter, from a process of its own, reaches a room, a user and a
// socket, and disconnects.
func TestEmitterFromAnotherProcess(t *testing.T) {
	t.Parallel()
	// Built before the socket joins: the presence join below, without
	// heartbeats, lasts one TTL, and a build on a busy machine can take
	// longer than that.
	bin := t.TempDir() + "/emitcmd"
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/emitcmd").CombinedOutput(); err != nil {
		t.Fatalf("building the emitter command: %v\n%s", err, out)
	}
	opts := testOptions(t)
	opts.Presence.TTL = time.Minute // erin stays in room r for the whole test
	n := startNode(t, opts)
	c := dial(t, n)
	join(t, c, "r", "erin", nil)
	run := func(args ...string) {
		t.Helper()
		args = append([]string{"-redis", opts.RedisURL, "-prefix", opts.Presence.Prefix}, args...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("emitcmd %v: %v\n%s", args, err, out)
		}
	}
	run("-room", "r", "-event", "m-room", "-data", `{"n":1}`)
	run("-user", "erin", "-event", "m-user", "-data", `"hey"`)
	run("-socket", c.ID(), "-event", "end")
	if got := received(t, c, "end"); !slices.Equal(got, []string{"m-room", "m-user"}) {
		t.Fatalf("got %v; want [m-room m-user]", got)
	}
	if out, err := exec.Command(bin, "-redis", opts.RedisURL, "-prefix", opts.Presence.Prefix,
		"-room", "r", "-event", "presence:event").CombinedOutput(); err == nil {
		t.Fatalf("the emitter sent a reserved event: %s", out)
	}
	run("-user", "erin", "-disconnect")
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("still connected after the emitter's disconnect")
	}
}

// A node with no socket in a room reads none of its messages from Redis;
// a socket that disconnects leaves no room, membership or subscription
// behind on its node.
func TestRoutingOnlyWhereNeeded(t *testing.T) { backends(t, testRoutingOnlyWhereNeeded) }

func testRoutingOnlyWhereNeeded(t *testing.T, opts ServerOptions) {
	opts.subLinger = 200 * time.Millisecond
	n1, n2 := startNode(t, opts, &router{}), startNode(t, opts, &router{})
	rs := roomsInDistinctBuckets(2, homeBucket(n1), homeBucket(n2))
	here, there := rs[0], rs[1]
	a, b := dial(t, n1), dial(t, n2)
	joinRooms(t, a, here)
	joinRooms(t, b, there)
	before := n1.srv.subs.received.Load()
	for i := 0; i < 20; i++ {
		routeCall(t, b, "test:emit", emitReq{Rooms: []string{there}, Event: "m"})
	}
	routeCall(t, b, "test:emit", emitReq{Rooms: []string{there}, Event: "end"})
	if got := received(t, b, "end"); len(got) != 20 {
		t.Fatalf("the room's own socket got %d messages; want 20", len(got))
	}
	routeCall(t, b, "test:emit", emitReq{Rooms: []string{here}, Event: "end"})
	received(t, a, "end")
	if got := n1.srv.subs.received.Load() - before; got != 1 {
		t.Fatalf("node 1 read %d messages from Redis; want 1 (its own room's)", got)
	}

	sock := n1.srv.socket(a.ID())
	routeCall(t, a, "test:join", map[string]any{"rooms": []string{there, "third"}})
	_ = a.Close()
	waitFor(t, 5*time.Second, "the socket dropped from every room", func() bool {
		n1.srv.hub.mu.Lock()
		defer n1.srv.hub.mu.Unlock()
		return n1.srv.hub.joined[sock] == nil && len(n1.srv.hub.rooms) == 0
	})
	waitFor(t, 5*time.Second+opts.subLinger, "node 1's buckets released", func() bool {
		return n1.srv.subs.buckets() == 0
	})
}

// Topics: subscribe, hear what a backend publishes, unsubscribe; a token's
// rooms claim decides which topics a socket may subscribe to.
func TestTopics(t *testing.T) { backends(t, testTopics) }

func testTopics(t *testing.T, opts ServerOptions) {
	opts.JWTSecret = []byte(testSecret)
	opts.APIToken = "api-secret"
	n1, n2 := startNode(t, opts, NewTopics()), startNode(t, opts, NewTopics())
	tok := func(sub string, rooms []string) client.Options {
		return client.Options{Token: signHS(t, testSecret, jwt.MapClaims{"sub": sub, "rooms": rooms, "exp": time.Now().Add(time.Hour).Unix()})}
	}
	a := dial(t, n1, tok("ann", []string{"scores", "news"}))
	b := dial(t, n2, tok("ben", []string{"scores"}))
	none := dial(t, n2, tok("nil", []string{}))
	ctx := tctx(t)
	for _, c := range []*client.Conn{a, b} {
		if err := c.Subscribe(ctx, "scores"); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, b.Subscribe(ctx, "news"), "forbidden")
	wantCode(t, none.Subscribe(ctx, "scores"), "forbidden") // an empty rooms claim grants nothing
	wantCode(t, a.Subscribe(ctx, "a{b"), "invalid_payload")
	wantCode(t, a.Subscribe(ctx, strings.Repeat("x", 101)), "invalid_payload")
	if code, resp := post(t, n2, "/v1/topics/scores/publish", "api-secret", `{"data":{"home":2,"away":1}}`); code != 200 {
		t.Fatalf("publish: %d %s", code, resp)
	}
	for _, c := range []*client.Conn{a, b} {
		for {
			e := nextEvent(t, c, 5*time.Second)
			if e.Name != "topic:message" {
				continue
			}
			m, err := client.ParseTopicMessage(e)
			if err != nil || m.Topic != "scores" || string(m.Data) != `{"home":2,"away":1}` || m.TS == 0 {
				t.Fatalf("got %+v, %v", m, err)
			}
			break
		}
	}
	if removed, err := b.Unsubscribe(ctx, "scores"); err != nil || !removed {
		t.Fatalf("unsubscribe: %v %v", removed, err)
	}
	if removed, err := b.Unsubscribe(ctx, "scores"); err != nil || removed {
		t.Fatalf("second unsubscribe: %v %v; want false", removed, err)
	}
	if code, _ := post(t, n1, "/v1/topics/scores/publish", "", `{"data":1}`); code != http.StatusUnauthorized {
		t.Fatalf("publish without the token: %d; want 401", code)
	}
	if code, _ := post(t, n1, "/v1/topics/scores/publish", "api-secret", `{"data":2}`); code != 200 {
		t.Fatalf("publish: %d", code)
	}
	if code, _ := post(t, n1, "/v1/topics/a%7Bb/publish", "api-secret", `{"data":2}`); code != http.StatusBadRequest {
		t.Fatalf("publish to a bad topic: %d; want 400", code)
	}
	if code, _ := post(t, n1, "/v1/sockets/"+b.ID()+"/emit", "api-secret", `{"event":"end"}`); code != 200 {
		t.Fatal("end marker")
	}
	for {
		e := nextEvent(t, b, 5*time.Second)
		if e.Name == "end" {
			break
		}
		if e.Name == "topic:message" {
			t.Fatalf("an unsubscribed socket got %s", e.Args)
		}
	}
}

// A socket may hold at most 64 topics.
func TestTopicsPerSocketCap(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Rates = DefaultRateLimits()
	opts.Rates.Other = Rate{PerSecond: 1000, Burst: 1000}
	n := startNode(t, opts, NewTopics())
	c := dial(t, n)
	for i := range maxTopicsPerSock {
		if err := c.Subscribe(tctx(t), fmt.Sprint("t", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Subscribe(tctx(t), "t0"); err != nil { // already held: fine
		t.Fatal(err)
	}
	wantCode(t, c.Subscribe(tctx(t), "one-too-many"), "forbidden")
}

// A room joined both by a module and by presence is left only when both
// left it: leaving it as a module keeps the presence membership, and the
// presence leave then ends it.
func TestModuleAndPresenceShareARoom(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t), &router{})
	c, other := dial(t, n), dial(t, n)
	joinRooms(t, c, "doc")
	join(t, c, "doc", "dana", nil)
	routeCall(t, c, "test:leave", map[string]any{"room": "doc"})
	routeCall(t, other, "test:emit", emitReq{Rooms: []string{"doc"}, Event: "m1"}) // presence keeps it in
	if _, err := c.Leave(tctx(t)); err != nil {
		t.Fatal(err)
	}
	routeCall(t, other, "test:emit", emitReq{Rooms: []string{"doc"}, Event: "m2"})
	routeCall(t, other, "test:emit", emitReq{Sockets: []string{c.ID()}, Event: "end"})
	if got := received(t, c, "end"); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("got %v; want [m1]: after both leaves the socket is out of the room", got)
	}
}

// handshakeRecorder keeps what modules see of each socket at connect.
type handshakeRecorder struct {
	mu   sync.Mutex
	seen map[string]Handshake
	prot map[string]int
}

func (*handshakeRecorder) Name() string                  { return "handshake-recorder" }
func (*handshakeRecorder) Register(*ModuleContext) error { return nil }
func (r *handshakeRecorder) OnDisconnect(*Socket)        {}
func (r *handshakeRecorder) OnConnect(s *Socket) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[s.ID()], r.prot[s.ID()] = s.Handshake(), s.Protocol()
}

// A module sees each socket's handshake: its headers, query, remote address
// and protocol generation, on both generations.
func TestModuleSeesHandshake(t *testing.T) {
	t.Parallel()
	rec := &handshakeRecorder{seen: map[string]Handshake{}, prot: map[string]int{}}
	n := startNode(t, testOptions(t), rec)
	for _, proto := range []int{3, 4} {
		c := dial(t, n, client.Options{Protocol: proto, Header: http.Header{"X-Tenant": {"acme-" + fmt.Sprint(proto)}}})
		var hs Handshake
		var got int
		waitFor(t, 5*time.Second, "the module's OnConnect", func() bool { // it may follow the connect answer
			rec.mu.Lock()
			defer rec.mu.Unlock()
			hs, got = rec.seen[c.ID()], rec.prot[c.ID()]
			return got != 0
		})
		host, _, err := net.SplitHostPort(hs.RemoteAddr)
		if hs.Header.Get("X-Tenant") != "acme-"+fmt.Sprint(proto) || hs.Query.Get("EIO") != fmt.Sprint(proto) ||
			err != nil || host != "127.0.0.1" || got != proto || hs.Time.IsZero() {
			t.Fatalf("EIO=%d: handshake %+v, protocol %d", proto, hs, got)
		}
	}
}
