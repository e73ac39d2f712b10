package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// engineIOSuiteDir holds the official Engine.IO protocol test suite
// (socketio/engine.io-protocol, test-suite/, kept as fetched) and
// target.mjs, which points it at the server this test starts.
const engineIOSuiteDir = "testdata/engine.io-protocol"

// The official Engine.IO protocol test suite (mocha, Node) against the
// engine with the settings it expects: pingInterval 300 ms, pingTimeout
// 200 ms, maxPayload 1,000,000 bytes, path /engine.io/, and a server that
// sends each message back to its sender, binary ones included. It does not
// run in parallel with other tests: some cases race two requests 5 ms
// apart, which a loaded machine can reorder.
func TestEngineIOProtocolSuite(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: the conformance test needs Node.js (make test checks for it)")
	}
	suite := filepath.Join(engineIOSuiteDir, "test-suite")
	if _, err := os.Stat(filepath.Join(suite, "node_modules", "mocha", "package.json")); err != nil {
		t.Fatalf("the Engine.IO test suite's packages are not installed in %s: run `make deps-conformance` (npm ci there)", suite)
	}
	runSuite(t, engineIOSuiteDir, "/engine.io/", engineOptions{
		pingInterval:  300 * time.Millisecond,
		pingTimeout:   200 * time.Millisecond,
		maxMessage:    500_000, // announced as maxPayload: twice this, a polling body's bound
		maxQueueBytes: 1 << 20,
		echo:          true,
	}, echoHost{})
}

// socketIOSuiteDir holds the official Socket.IO protocol test suite
// (socketio/socket.io-protocol, test-suite/, kept as fetched) and
// target.mjs, as for the Engine.IO suite.
const socketIOSuiteDir = "testdata/socket.io-protocol"

// The official Socket.IO protocol test suite against the engine with the
// settings and the test server its README describes: pingInterval 300 ms,
// pingTimeout 200 ms, maxPayload 1,000,000 bytes, path /socket.io/, a
// connect timeout (10 s here, 1 s there: no case tests it, and its
// heartbeat cases spend 0.9 s and more on a loaded machine without
// connecting), the
// namespaces "/" and "/custom", each of which sends its client "auth" with
// the CONNECT's auth object, and echoes "message" back as "message-back"
// and "message-with-ack" as its acknowledgement, binary attachments
// included.
func TestSocketIOProtocolSuite(t *testing.T) {
	runSuite(t, socketIOSuiteDir, "/socket.io/", engineOptions{
		pingInterval:   300 * time.Millisecond,
		pingTimeout:    200 * time.Millisecond,
		connectTimeout: 10 * time.Second,
		maxMessage:     500_000,
		maxQueueBytes:  1 << 20,
		rootArgs:       true,
	}, suiteHost{})
}

// runSuite runs the mocha suite in dir/test-suite against an engine with
// opts and host, served at path.
func runSuite(t *testing.T, dir, path string, opts engineOptions, host engineHost) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: the conformance test needs Node.js (make test checks for it)")
	}
	suite := filepath.Join(dir, "test-suite")
	if _, err := os.Stat(filepath.Join(suite, "node_modules", "mocha", "package.json")); err != nil {
		t.Fatalf("the protocol test suite's packages are not installed in %s: run `make deps-conformance` (npm ci there)", suite)
	}
	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	log := slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng := newEngine(opts, host, log, spawn)
	mux := http.NewServeMux()
	mux.Handle(path, eng)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		for _, s := range eng.drain() {
			s.close("server shutdown")
		}
		wg.Wait()
		eng.stop()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The suites' timings are tight (a ping answered within 200 ms, a poll
	// within 500 ms), and make test runs them beside the SDK's browser
	// suite on two cores: a case that misses one is tried again, five times
	// at most. A case that is wrong fails all six tries.
	cmd := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", "mocha"),
		"--require", "../target.mjs", "--reporter", "dot", "--retries", "5",
		"test-suite.js")
	cmd.Dir = suite
	cmd.Env = append(os.Environ(), "CONFORMANCE_URL="+srv.URL, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	t.Logf("mocha:\n%s", out)
	if err != nil {
		t.Fatalf("the protocol test suite in %s failed: %v", dir, err)
	}
}

// echoHost is the engine's host for the conformance suites: it admits
// everyone and ignores Socket.IO, which the Engine.IO suite never speaks.
type echoHost struct{}

func (echoHost) originAllowed(string) bool                                    { return true }
func (echoHost) admit(*http.Request, int) (int, string)                       { return 0, "" }
func (echoHost) authorize(*Socket, json.RawMessage) error                     { return nil }
func (echoHost) connect(*Socket)                                              {}
func (echoHost) event(*Socket, string, json.RawMessage, bool) json.RawMessage { return nil }
func (echoHost) disconnect(*Socket, string)                                   {}
func (echoHost) gone(*Socket)                                                 {}
func (echoHost) slow(*Socket)                                                 {}

func (echoHost) nspAuthorize(*Socket, string, json.RawMessage) error { return errUnknownNamespace }
func (echoHost) nspConnect(*Socket, string)                          {}
func (echoHost) nspEvent(*Socket, *nspEvent) ([]byte, [][]byte)      { return nil, nil }
func (echoHost) nspDisconnect(*Socket, string, string)               {}

// suiteHost is the engine's host for the Socket.IO protocol test suite:
// the test server of its README, serving "/" and "/custom".
type suiteHost struct{ echoHost }

// suiteAuth keys the auth object a socket connected to a namespace with.
type suiteAuth struct{ nsp string }

func (suiteHost) authorize(s *Socket, auth json.RawMessage) error {
	return suiteHost{}.nspAuthorize(s, "/", auth)
}

func (suiteHost) connect(s *Socket) { suiteHost{}.nspConnect(s, "/") }

func (suiteHost) nspAuthorize(s *Socket, nsp string, auth json.RawMessage) error {
	if nsp != "/" && nsp != "/custom" {
		return errUnknownNamespace
	}
	if len(auth) == 0 {
		auth = json.RawMessage("{}")
	}
	s.Set(suiteAuth{nsp}, auth)
	return nil
}

// nspConnect sends the client "auth" with its CONNECT's auth object, a
// moment after the CONNECT's answer: the suite awaits the two one after the
// other, and its websocket library (ws 8.5) emits every message of one read
// at once, before the second await listens. socket.io's separate writes
// keep them apart in practice; the engine writes everything queued in one.
func (suiteHost) nspConnect(s *Socket, nsp string) {
	auth, _ := s.Value(suiteAuth{nsp}).(json.RawMessage)
	frames := packetFrames(s.proto, sioEvent, nsp, -1, append([]byte(`"auth",`), auth...), nil)
	time.AfterFunc(suiteApart, func() { s.sess.sendFrames(frames) })
}

// suiteApart is how long the suite's test server waits between packets the
// suite awaits one by one.
const suiteApart = 50 * time.Millisecond

// nspEvent echoes "message" as "message-back" and acknowledges
// "message-with-ack" with its arguments, attachments included.
func (suiteHost) nspEvent(s *Socket, ev *nspEvent) ([]byte, [][]byte) {
	switch ev.name {
	case "message":
		body := []byte(`"message-back"`)
		if len(ev.args) > 0 {
			body = append(append(body, ','), ev.args...)
		}
		s.sess.sendFrames(packetFrames(s.proto, sioEvent, ev.nsp, -1, body, ev.att))
	case "message-with-ack":
		return ev.args, ev.att
	}
	return nil, nil
}
