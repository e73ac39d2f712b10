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
	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	log := slog.New(slog.NewTextHandler(newLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng := newEngine(engineOptions{
		pingInterval:  300 * time.Millisecond,
		pingTimeout:   200 * time.Millisecond,
		maxMessage:    500_000, // announced as maxPayload: twice this, a polling body's bound
		maxQueueBytes: 1 << 20,
		echo:          true,
	}, echoHost{}, log, spawn)
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", eng)
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
	cmd := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", "mocha"),
		"--require", "../target.mjs", "--reporter", "dot",
		"test-suite.js")
	cmd.Dir = suite
	cmd.Env = append(os.Environ(), "CONFORMANCE_URL="+srv.URL, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	t.Logf("mocha:\n%s", out)
	if err != nil {
		t.Fatalf("the Engine.IO protocol test suite failed: %v", err)
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
