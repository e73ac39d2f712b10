package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"rtm/client"
)

const testSecret = "test-secret-of-reasonable-length"

func signHS(t *testing.T, secret string, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWTHandshake(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.JWTSecret = []byte(testSecret)
	n := startNode(t, opts)
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice", "exp": exp}).SignedString(rsaKey)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": exp}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "alice", "exp": exp}).SignedString([]byte(testSecret))

	for name, tc := range map[string]struct {
		token string
		ok    bool
	}{
		"valid":               {signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp}), true},
		"expired 10 s ago":    {signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-10 * time.Second).Unix()}), true},
		"expired 60 s ago":    {signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-60 * time.Second).Unix()}), false},
		"nbf 10 s ahead":      {signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "nbf": now.Add(10 * time.Second).Unix()}), true},
		"nbf 60 s ahead":      {signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "nbf": now.Add(60 * time.Second).Unix()}), false},
		"no exp":              {signHS(t, testSecret, jwt.MapClaims{"sub": "alice"}), false},
		"no sub":              {signHS(t, testSecret, jwt.MapClaims{"exp": exp}), false},
		"wrong secret":        {signHS(t, "another-secret", jwt.MapClaims{"sub": "alice", "exp": exp}), false},
		"alg none":            {none, false},
		"alg RS256":           {rs256, false},
		"alg HS512":           {hs512, false},
		"rooms not an array":  {signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": "r1"}), false},
		"rooms with a number": {signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": []any{"r1", 2}}), false},
		"malformed":           {"not.a.token", false},
		"missing":             {"", false},
	} {
		c, err := client.Dial(tctx(t), n.url, client.Options{Token: tc.token})
		if tc.ok {
			if err != nil {
				t.Errorf("%s: got %v; want connected", name, err)
				continue
			}
			_ = c.Close()
			continue
		}
		if !errors.Is(err, client.ErrRefused) {
			if c != nil {
				_ = c.Close()
			}
			t.Errorf("%s: got %v; want refused at the handshake", name, err)
		}
	}
	// Polling handshakes are refused the same way.
	resp, err := http.Get(n.url + "/socket.io/?EIO=3&transport=polling&token=bad")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("polling handshake with a bad token: got %d; want 401", resp.StatusCode)
	}
}

func TestJWTForbidden(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.JWTSecret = []byte(testSecret)
	n := startNode(t, opts)
	exp := time.Now().Add(time.Hour).Unix()
	tok := signHS(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": exp, "rooms": []string{"r1", "r2"}})
	c := dial(t, n, client.Options{Token: tok})
	ctx := tctx(t)
	_, err := c.Join(ctx, client.JoinRequest{RoomID: "r1", UserID: "bob"})
	wantCode(t, err, "forbidden")
	_, err = c.Join(ctx, client.JoinRequest{RoomID: "r3", UserID: "alice"})
	wantCode(t, err, "forbidden")
	// invalid_payload and payload_too_large come before forbidden.
	_, err = c.Join(ctx, client.JoinRequest{RoomID: "r{3}", UserID: "bob"})
	wantCode(t, err, "invalid_payload")
	_, err = c.Join(ctx, client.JoinRequest{RoomID: "r3", UserID: "bob", State: map[string]string{"k": strings.Repeat("x", 5000)}})
	wantCode(t, err, "payload_too_large")
	join(t, c, "r2", "alice", nil)

	// A token without rooms allows any room, but only as its subject.
	any := dial(t, n, client.Options{Token: signHS(t, testSecret, jwt.MapClaims{"sub": "carol", "exp": exp})})
	join(t, any, "anywhere", "carol", nil)

	// An empty rooms list grants no room (it is not the same as no list).
	none := dial(t, n, client.Options{Token: signHS(t, testSecret, jwt.MapClaims{"sub": "dave", "exp": exp, "rooms": []string{}})})
	for _, room := range []string{"r1", "anywhere"} {
		_, err = none.Join(ctx, client.JoinRequest{RoomID: room, UserID: "dave"})
		wantCode(t, err, "forbidden")
	}

	// With JWT on and no API token, the HTTP API refuses everyone.
	if code := httpStatus(t, n.url+"/v1/rooms/r2/presence"); code != http.StatusUnauthorized {
		t.Fatalf("API: got %d; want 401", code)
	}
}

func TestOriginAllowlist(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.AllowedOrigins = []string{"https://app.example", "https://a.example"}
	n := startNode(t, opts)
	// Exact match only: not a prefix, not another port, not another scheme.
	for origin, ok := range map[string]bool{
		"https://app.example":        true,
		"https://a.example":          true,
		"":                           true,
		"https://evil.example":       false,
		"https://a.example.evil.com": false,
		"https://a.example:8443":     false,
		"http://a.example":           false,
		"https://b.a.example":        false,
		"null":                       false,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, err := client.Dial(tctx(t), n.url, client.Options{Header: h})
		if ok != (err == nil) {
			t.Errorf("websocket from %q: got %v; want allowed=%v", origin, err, ok)
		}
		if c != nil {
			_ = c.Close()
		}
		req, _ := http.NewRequest("GET", n.url+"/socket.io/?EIO=3&transport=polling", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ok != (resp.StatusCode == 200) {
			t.Errorf("polling from %q: got %d; want allowed=%v", origin, resp.StatusCode, ok)
		}
		if ok && origin != "" && resp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("polling from %q: no CORS header", origin)
		}
		if ok { // continue the session, as a client would: a ping (a poll would park until pollWait)
			sid := regexp.MustCompile(`"sid":"([^"]+)"`).FindSubmatch(body)
			if sid == nil {
				t.Fatalf("no sid in %q", body)
			}
			req, _ := http.NewRequest("POST", n.url+"/socket.io/?EIO=3&transport=polling&sid="+string(sid[1]), strings.NewReader("1:2"))
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("polling from %q: the session's ping answered %d; want 200", origin, resp.StatusCode)
			}
		}
	}
}

func TestSocketsPerIPCap(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.MaxSocketsPerIP = 2
	n := startNode(t, opts)
	a := dial(t, n)
	dial(t, n)
	if _, err := client.Dial(tctx(t), n.url, client.Options{}); !errors.Is(err, client.ErrRefused) {
		t.Fatalf("third socket: got %v; want refused", err)
	}
	_ = a.Close()
	waitFor(t, 5*time.Second, "a slot to free up", func() bool {
		c, err := client.Dial(tctx(t), n.url, client.Options{})
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

func TestPresenceAPI(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.APIToken = "api-secret"
	n := startNode(t, opts)
	c := dial(t, n)
	ack := join(t, c, "r é", "alice", map[string]any{"a": 1})
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest("GET", n.url+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for name, tc := range map[string]struct {
		path, auth string
		status     int
	}{
		"no token":        {"/v1/rooms/r%20%C3%A9/presence", "", 401},
		"wrong token":     {"/v1/rooms/r%20%C3%A9/presence", "Bearer nope", 401},
		"wrong scheme":    {"/v1/rooms/r%20%C3%A9/presence", "Basic api-secret", 401},
		"lowercase":       {"/v1/rooms/r%20%C3%A9/presence", "bearer api-secret", 200},
		"invalid room":    {"/v1/rooms/a%7Bb/presence", "Bearer api-secret", 400},
		"empty room":      {"/v1/rooms/nobody/presence", "Bearer api-secret", 200},
		"too long a room": {"/v1/rooms/" + strings.Repeat("x", 129) + "/presence", "Bearer api-secret", 400},
	} {
		if status, body := get(tc.path, tc.auth); status != tc.status {
			t.Errorf("%s: got %d %s; want %d", name, status, body, tc.status)
		}
	}
	_, body := get("/v1/rooms/r%20%C3%A9/presence", "Bearer api-secret")
	var snap client.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); err != nil || snap.RoomID != "r é" || snap.Seq != 1 ||
		len(snap.Connections) != 1 || snap.Connections[0].ConnID != ack.Self.ConnID || string(snap.Connections[0].State) != `{"a":1}` {
		t.Fatalf("got %s, %v", body, err)
	}
	_, body = get("/v1/rooms/nobody/presence", "Bearer api-secret")
	if body != `{"roomId":"nobody","seq":0,"members":[],"connections":[]}` {
		t.Fatalf("empty room: got %s", body)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	n := startNode(t, opts)
	scrape := func() string {
		resp, err := http.Get(n.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	c := dial(t, n)
	join(t, c, "r", "alice", nil)
	if _, err := c.Heartbeat(tctx(t), client.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Heartbeat(tctx(t), client.HeartbeatRequest{Epoch: ptr(int64(1)), PatchState: map[string]any{"x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Chat(tctx(t), "")
	wantCode(t, err, "invalid_payload")
	waitFor(t, 5*time.Second, "a reaper run", func() bool { return strings.Contains(scrape(), "rtm_reaper_runs_total ") })
	m := scrape()
	for _, want := range []string{
		"rtm_sockets 1",
		"rtm_joined_connections 1",
		"rtm_rooms 1",
		`rtm_acks_total{code="ok",event="presence:join"} 1`,
		`rtm_acks_total{code="ok",event="presence:heartbeat"} 2`,
		`rtm_acks_total{code="invalid_payload",event="chat:message"} 1`,
		`rtm_presence_events_total{type="join"} 1`,
		`rtm_presence_events_total{type="update"} 1`,
		`rtm_handler_seconds_count{event="presence:join"} 1`,
		"rtm_heartbeat_batch_size_count 1",
		"rtm_redis_roundtrip_seconds_count",
		"rtm_pubsub_up 1",
		"rtm_reaper_removals_total 0",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if _, err := c.Leave(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if m := scrape(); !strings.Contains(m, `rtm_presence_events_total{type="leave"} 1`) || !strings.Contains(m, "rtm_joined_connections 0") {
		t.Errorf("leave not counted")
	}
}

// METRICS_TOKEN closes /metrics to requests without "Bearer <token>"; with
// no metrics token the metrics stay open (API_TOKEN does not guard them).
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(nil, func(k string) string {
		return map[string]string{"METRICS_TOKEN": "m-secret"}[k]
	}, io.Discard)
	if err != nil || cfg.Server.MetricsToken != "m-secret" {
		t.Fatalf("METRICS_TOKEN: got %+v, %v", cfg, err)
	}
	scrape := func(n *testNode, auth string) (int, string) {
		req, _ := http.NewRequest("GET", n.url+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	opts := testOptions(t)
	opts.MetricsToken = "m-secret"
	opts.APIToken = "api-secret"
	guarded := startNode(t, opts)
	for name, tc := range map[string]struct {
		auth   string
		status int
	}{
		"no token":            {"", 401},
		"wrong token":         {"Bearer nope", 401},
		"the API token":       {"Bearer api-secret", 401},
		"a prefix":            {"Bearer m-secre", 401},
		"longer":              {"Bearer m-secret2", 401},
		"wrong scheme":        {"Basic m-secret", 401},
		"no scheme":           {"m-secret", 401},
		"right":               {"Bearer m-secret", 200},
		"lowercase scheme":    {"bearer m-secret", 200},
		"spaces around token": {"Bearer  m-secret ", 200},
	} {
		status, body := scrape(guarded, tc.auth)
		if status != tc.status {
			t.Errorf("%s: got %d; want %d", name, status, tc.status)
		}
		if leaked := strings.Contains(body, "rtm_sockets"); leaked != (tc.status == 200) {
			t.Errorf("%s: metrics in the body: %v; want %v", name, leaked, tc.status == 200)
		}
	}

	open := testOptions(t)
	open.APIToken = "api-secret"
	if status, body := scrape(startNode(t, open), ""); status != 200 || !strings.Contains(body, "rtm_sockets") {
		t.Fatalf("no METRICS_TOKEN: got %d; want the metrics, open", status)
	}
}
