package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// leaveOfSize returns a presence:leave packet with ack id 1 of exactly n
// bytes (the padding is a key the handler ignores).
func leaveOfSize(t *testing.T, n int) string {
	t.Helper()
	pk := `421["presence:leave",{"pad":""}]`
	if n < len(pk) {
		t.Fatalf("no leave packet of %d bytes", n)
	}
	return strings.Replace(pk, `""`, `"`+strings.Repeat("a", n-len(pk))+`"`, 1)
}

// wantLeaveAck fails unless ack is the answer of a leave while not joined.
func wantLeaveAck(t *testing.T, what string, ack map[string]any) {
	t.Helper()
	if ack["ok"] != true || ack["removed"] != false {
		t.Fatalf("%s: got %v; want {ok:true, removed:false}", what, ack)
	}
}

// A message of exactly MAX_MESSAGE_BYTES is handled and one byte more ends
// the session, on both transports and in both versions: over a websocket
// whether it comes in one frame or in fragments (a close frame 1009), over
// polling as a packet of a body (HTTP 413, the session gone). A polling body
// may hold several messages, up to twice the limit in all.
func TestMessageLimitBothTransports(t *testing.T) {
	t.Parallel()
	const limit = 1024
	opts := testOptions(t)
	opts.MaxMessageBytes = limit
	n := startNode(t, opts)
	exact, over := leaveOfSize(t, limit), leaveOfSize(t, limit+1)
	for _, v := range versions {
		for name, frames := range map[string]func(string) [][]byte{
			"one frame": func(pk string) [][]byte { return [][]byte{clientFrame(0x81, pk)} },
			"fragments": func(pk string) [][]byte {
				return [][]byte{clientFrame(0x01, pk[:600]), clientFrame(0x00, pk[600:1000]), clientFrame(0x80, pk[1000:])}
			},
		} {
			r := dialRaw(t, n, v, "", "")
			send := func(pk string) {
				for _, f := range frames(pk) {
					if _, err := r.c.UnderlyingConn().Write(f); err != nil {
						t.Fatal(err)
					}
				}
			}
			send(exact)
			wantLeaveAck(t, "websocket "+name+" of the limit", r.ack(1))
			send(over)
			for {
				pk, err := r.read(10 * time.Second)
				if err != nil {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != wsCloseTooBig {
						t.Fatalf("EIO=%d websocket %s one byte over the limit: %v; want a close frame %d", v, name, err, wsCloseTooBig)
					}
					break
				}
				if pk == "2" {
					r.send("3")
					continue
				}
				t.Fatalf("EIO=%d websocket %s one byte over the limit: got %q; want the close", v, name, pk)
			}
		}

		p := openPolling(t, n.url, v)
		p.post(exact)
		wantLeaveAck(t, "polling message of the limit", p.ack(1))
		p.post(exact, strings.Replace(leaveOfSize(t, 100), "421", "422", 1)) // a body over the limit, its messages within
		wantLeaveAck(t, "polling body of two messages", p.ack(2))
		if status, body := p.request("POST", p.encode(over)); status != http.StatusRequestEntityTooLarge {
			t.Fatalf("EIO=%d polling message one byte over the limit: HTTP %d %s; want 413", v, status, body)
		}
		if status, _ := p.request("GET", ""); status != http.StatusBadRequest {
			t.Fatalf("EIO=%d polling: the session lives on after a message over the limit (HTTP %d)", v, status)
		}
	}
}
