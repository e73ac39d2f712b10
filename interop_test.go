package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// interopDir holds the official clients of both generations (socket.io-client
// 2.5.0 as sio2, 4.8.3 as sio4), installed by `make deps` (npm ci).
const interopDir = "testdata/interop"

// The official socket.io-client 2.5.0 and 4.8.3 (Node) against two nodes,
// over websocket, polling and polling upgraded to websocket, with non-ASCII
// ids, state and chat text in both directions.
func TestInteropSocketIOClient(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: the interop test needs Node.js (make test checks for it)")
	}
	for _, pkg := range []string{"sio2", "sio4"} {
		if _, err := os.Stat(filepath.Join(interopDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("%s is not installed in %s: run `make deps` (npm ci there)", pkg, interopDir)
		}
	}
	opts := testOptions(t)
	n1, n2 := startNode(t, opts), startNode(t, opts)
	for _, version := range []string{"3", "4"} {
		for name, transports := range map[string]string{
			"websocket": "websocket",
			"polling":   "polling",
			"upgrade":   "polling,websocket",
		} {
			t.Run("EIO"+version+"/"+name, func(t *testing.T) { interop(t, n1, n2, version, name, transports) })
		}
	}
}

func interop(t *testing.T, n1, n2 *testNode, version, name, transports string) {
	t.Parallel()
	var out []byte
	var err error
	var res struct {
		OK       bool   `json:"ok"`
		Error    string `json:"error"`
		Upgraded bool   `json:"upgraded"`
	}
	// The upgrade case runs three times: the transport swap is where
	// sessions get lost if anything does.
	runs := 1
	if name == "upgrade" {
		runs = 3
	}
	for i := 0; i < runs; i++ {
		cmd := exec.Command("node", "interop.cjs", n1.url, n2.url, transports, fmt.Sprintf("salle-%s-%s-%d-é-🎉", version, name, i), version)
		cmd.Dir = interopDir
		out, err = cmd.Output()
		res.OK = false
		if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || !res.OK {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("interop over %s, run %d: %v %s %s", transports, i+1, err, out, stderr)
		}
	}
	if name == "upgrade" && !res.Upgraded {
		t.Fatalf("the client did not upgrade from polling to websocket: %s", out)
	}
}

// Routing with the official clients of both generations, on both
// transports, over two nodes: topics a backend publishes to, a backend emit
// to a user and to one socket, and a backend disconnect that the client
// takes as final.
func TestInteropRouting(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"sio2", "sio4"} {
		if _, err := os.Stat(filepath.Join(interopDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("%s is not installed in %s: run `make deps` (npm ci there)", pkg, interopDir)
		}
	}
	opts := testOptions(t)
	opts.APIToken = "interop-token"
	n1, n2 := startNode(t, opts, NewTopics()), startNode(t, opts, NewTopics())
	for _, version := range []string{"3", "4"} {
		for _, transports := range []string{"websocket", "polling"} {
			t.Run("EIO"+version+"/"+transports, func(t *testing.T) {
				t.Parallel()
				runInterop(t, "routing.cjs", n1.url, n2.url, transports, "sujet-"+version+"-"+transports,
					version, opts.APIToken)
			})
		}
	}
}

// Namespaces and binary payloads with the official clients of both
// generations, on both transports and the upgrade: connect (v4 with auth),
// an event with a binary argument, acks with binary arguments, nested ones
// too, and the refusal of a namespace nobody serves.
func TestInteropNamespaces(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"sio2", "sio4"} {
		if _, err := os.Stat(filepath.Join(interopDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("%s is not installed in %s: run `make deps` (npm ci there)", pkg, interopDir)
		}
	}
	n := startNode(t, testOptions(t), &echoNamespaces{})
	for _, version := range []string{"3", "4"} {
		for _, transports := range []string{"websocket", "polling", "polling,websocket"} {
			t.Run("EIO"+version+"/"+transports, func(t *testing.T) {
				t.Parallel()
				runInterop(t, "namespace.cjs", n.url, transports, version)
			})
		}
	}
}

// A member that drops mid-stream comes back and recovers exactly what it
// missed (chat messages and state updates from the other node), in order,
// before its acknowledgement, then live messages: with the official clients
// of both generations, on both transports.
func TestInteropRecovery(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Presence.DisconnectGrace = time.Minute // the dropped member's connection waits for its resume
	opts.Presence.TTL = time.Minute             // no heartbeats from the dropped member
	n1, n2 := startNode(t, opts), startNode(t, opts)
	for _, version := range []string{"3", "4"} {
		for _, transports := range []string{"websocket", "polling"} {
			t.Run("EIO"+version+"/"+transports, func(t *testing.T) {
				t.Parallel()
				runInterop(t, "recovery.cjs", n1.url, n2.url, transports, "rec-"+version+"-"+transports, version)
			})
		}
	}
}

// runInterop runs one of the interop scripts with node and fails t unless
// it prints {"ok":true}.
func runInterop(t *testing.T, script string, args ...string) {
	t.Helper()
	for _, pkg := range []string{"sio2", "sio4"} {
		if _, err := os.Stat(filepath.Join(interopDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("%s is not installed in %s: run `make deps` (npm ci there)", pkg, interopDir)
		}
	}
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Dir = interopDir
	out, err := cmd.Output()
	var res struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || !res.OK {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %v: %v %s %s", script, args, err, out, stderr)
	}
}
