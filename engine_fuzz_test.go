package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"rtm/client"
)

// The engine's decoders take anything without panicking, and allocate only
// in proportion to the input.

func FuzzDecodeSIO(f *testing.F) {
	for _, s := range []string{
		`2["x",{}]`, `20["x"]`, `0`, `0{"token":"t"}`, `0/admin,`, `1`, `3[1]`, `4{"message":"m"}`,
		`518446744073709551615-["x"]`, `510000000000-["presence:sync"]`, `61-0[]`, `2/a,99999999999999999999[]`,
		`2/`, `/`, `9`, "2[\"\xff\"]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeSIO(b)
		if err != nil {
			return
		}
		if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
			t.Fatalf("binary packet %q decoded", b)
		}
		if len(p.data) > len(b) || len(p.nsp) > len(b)+1 {
			t.Fatalf("decoded more than the input: %+v", p)
		}
		if p.typ == sioEvent {
			_, _, _ = decodeEvent(p.data)
		}
	})
}

func FuzzPayloadV3(f *testing.F) {
	for _, s := range []string{"2:4é2:40", "4:42👍", "1:2", "3:42", "x:1", "", "0:", "99999999999:4", "3:4\xf0\x9f\x91", "1:21:3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var total int
		err := decodePayloadV3(b, func(p []byte) error {
			total += len(p)
			var buf bytes.Buffer
			writePayload(&buf, 3, p, true)
			var back [][]byte
			if err := decodePayloadV3(buf.Bytes(), func(q []byte) error { back = append(back, q); return nil }); err != nil ||
				len(back) != 1 || !bytes.Equal(back[0], p) {
				t.Fatalf("packet %q does not survive a round trip: %q, %v", p, back, err)
			}
			return nil
		})
		if err == nil && total > len(b) {
			t.Fatalf("decoded %d bytes from %d", total, len(b))
		}
	})
}

func FuzzPayloadV4(f *testing.F) {
	for _, s := range []string{"4é\x1e40", "2", "\x1e2", "", "4\xff", "2\x1e3\x1e"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got [][]byte
		err := decodePayloadV4(b, func(p []byte) error { got = append(got, p); return nil })
		if err != nil {
			return
		}
		var buf bytes.Buffer
		for i, p := range got {
			if len(p) == 0 || bytes.IndexByte(p, 0x1e) >= 0 {
				t.Fatalf("bad packet %q from %q", p, b)
			}
			writePayload(&buf, 4, p, i == 0)
		}
		if !bytes.Equal(buf.Bytes(), bytes.TrimSuffix(b, []byte{0x1e})) {
			t.Fatalf("%q re-encodes as %q", b, buf.Bytes())
		}
	})
}

// FuzzPacket feeds raw Engine.IO frames to a live node over websocket: the
// node survives every one of them and keeps serving a well-behaved client,
// whose presence data stays intact.
func FuzzPacket(f *testing.F) {
	for _, s := range []string{
		`42["presence:join",{"roomId":"r","userId":"u"}]`, `420["presence:join","x"]`, `421["presence:heartbeat",[1]]`,
		`42["chat:message",{"text":{"a":1}}]`, `42[`, `42`, `4`, `40/unknown,`, `41`, `40`, `43999[1]`, `451-["x",{"_placeholder":true,"num":0}]`,
		`49`, `2`, `3probe`, `5`, `6`, `42["presence:leave"]`, `42[null]`, `42[1,2]`, `42{"a":1}`, "42[\"\xff\"]", `4242424242`,
		`42["presence:join",{"roomId":"r","userId":"u","state":{"a":1e999}}]`, `42["presence:heartbeat",{"epoch":1e20}]`,
		`4518446744073709551615-["x"]`, `4510000000000-["presence:sync"]`, `4518446744073709551615-["presence:sync"]`,
		`461-0[{"_placeholder":true,"num":0}]`, `42/admin,1["presence:sync"]`, `44{"message":"x"}`, `1`, `2probe`,
		`4999999999999999999999["presence:sync"]`, `42["presence:join",{"roomId":"\ud800","userId":"u"}]`,
	} {
		f.Add(s)
	}
	opts := testOptions(f)
	opts.Rates = RateLimits{Other: Rate{PerSecond: 1e6, Burst: 1e6}, Heartbeat: Rate{PerSecond: 1e6, Burst: 1e6},
		Patch: Rate{PerSecond: 1e6, Burst: 1e6}, Chat: Rate{PerSecond: 1e6, Burst: 1e6}}
	opts.Presence.TTL = time.Hour
	n := startNode(f, opts)
	good := dial(f, n, client.Options{OnEvent: func(client.Event) {}})
	if _, err := good.Join(tctx(f), client.JoinRequest{RoomID: "r", UserID: "good", State: map[string]any{"k": "v"}}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame string) {
		c, err := client.Dial(tctx(t), n.url, client.Options{OnEvent: func(client.Event) {}})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.WriteRaw(frame)
		// Let the frame be handled. A frame that disconnected the namespace
		// ("41") leaves nothing to answer, hence the short deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, _ = c.Call(ctx, "presence:sync")
		cancel()
		_ = c.Close()
		snap, err := good.Sync(tctx(t))
		if err != nil {
			t.Fatalf("after %q the good client failed: %v", frame, err)
		}
		for _, conn := range snap.Connections {
			if conn.UserID == "good" && string(conn.State) != `{"k":"v"}` {
				t.Fatalf("after %q the good client's state is %s", frame, conn.State)
			}
		}
	})
}
