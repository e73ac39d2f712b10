package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// nodeModules is where `npm ci` in sdk/ puts socket.io-client 2.5.0.
const nodeModules = "sdk/node_modules"

// The official socket.io-client 2.5.0 (Node) against two nodes, over
// websocket, polling and polling upgraded to websocket, with non-ASCII ids,
// state and chat text in both directions.
func TestInteropSocketIOClient(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: the interop test needs Node.js (make test checks for it)")
	}
	if _, err := os.Stat(filepath.Join(nodeModules, "socket.io-client", "package.json")); err != nil {
		t.Fatalf("socket.io-client is not installed in %s: run `make test` (it runs npm ci in sdk/)", nodeModules)
	}
	opts := testOptions(t)
	n1, n2 := startNode(t, opts), startNode(t, opts)
	abs, _ := filepath.Abs(nodeModules)
	for name, transports := range map[string]string{
		"websocket": "websocket",
		"polling":   "polling",
		"upgrade":   "polling,websocket",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out []byte
			var err error
			var res struct {
				OK       bool   `json:"ok"`
				Error    string `json:"error"`
				Upgraded bool   `json:"upgraded"`
			}
			// go-socket.io v1.7.0 can lose a session at the instant it swaps
			// transports (its reader may be inside the closed polling
			// connection): a known library race, about 1 upgrade in 40.
			// The upgrade case gets three attempts; the others one.
			attempts := 1
			if name == "upgrade" {
				attempts = 3
			}
			for i := 0; i < attempts; i++ {
				cmd := exec.Command("node", "testdata/interop.cjs", n1.url, n2.url, transports, fmt.Sprintf("salle-%s-%d-é-🎉", name, i))
				cmd.Env = append(os.Environ(), "NODE_PATH="+abs)
				out, err = cmd.Output()
				res.OK = false
				if jerr := json.Unmarshal(out, &res); jerr == nil && err == nil && res.OK {
					break
				}
				t.Logf("interop over %s, attempt %d: %v %s", transports, i+1, err, out)
			}
			if !res.OK {
				t.Fatalf("interop over %s failed: %v %s", transports, err, out)
			}
			if name == "upgrade" && !res.Upgraded {
				t.Fatalf("the client did not upgrade from polling to websocket: %s", out)
			}
		})
	}
}
