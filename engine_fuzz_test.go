package main

import (
	"bytes"
	"context"
	"encoding/json"
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
		`2/`, `/`, `9`, "2[\"\xff\"]", `52-/chat,3["x",{"_placeholder":true,"num":0}]`, `5-[]`, `5999-["x"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeSIO(b)
		if err != nil {
			return
		}
		if p.typ == sioBinaryAck || p.attached > 999 || p.typ != sioBinaryEvent && p.attached != 0 {
			t.Fatalf("%q decoded as %+v", b, p)
		}
		if len(p.data) > len(b) || len(p.nsp) > len(b)+1 {
			t.Fatalf("decoded more than the input: %+v", p)
		}
		if p.typ == sioEvent {
			checkDecodeEvent(t, p.data)
		}
		if p.typ == sioEvent || p.typ == sioBinaryEvent {
			checkSplitEvent(t, p.data)
		}
	})
}

// checkSplitEvent compares splitEvent with encoding/json on b.
func checkSplitEvent(t *testing.T, b []byte) {
	name, args, err := splitEvent(b)
	var arr []json.RawMessage
	var wantName string
	wantErr := json.Unmarshal(b, &arr) != nil || len(arr) == 0 || arr[0][0] != '"' || json.Unmarshal(arr[0], &wantName) != nil
	if wantErr != (err != nil) {
		t.Fatalf("splitEvent(%q): err %v; encoding/json says error=%v", b, err, wantErr)
	}
	if err != nil {
		return
	}
	var got []json.RawMessage
	if len(args) > 0 {
		if err := json.Unmarshal(append(append([]byte("["), args...), ']'), &got); err != nil {
			t.Fatalf("splitEvent(%q) args %q: %v", b, args, err)
		}
	}
	if name != wantName || len(got) != len(arr)-1 {
		t.Fatalf("splitEvent(%q) = %q, %q; want %q and %d arguments", b, name, args, wantName, len(arr)-1)
	}
	for i := range got {
		if !bytes.Equal(bytes.TrimSpace(got[i]), bytes.TrimSpace(arr[i+1])) {
			t.Fatalf("splitEvent(%q) argument %d = %s; want %s", b, i, got[i], arr[i+1])
		}
	}
}

// decodeArgs takes any arguments and attachments without panicking, and
// every placeholder it fills names an attachment that exists.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range []string{
		`{"_placeholder":true,"num":0}`, `1,"x",[{"_placeholder":true,"num":1}]`, `{"_placeholder":true,"num":1.5}`,
		`{"_placeholder":true,"num":-1}`, `{"a":{"_placeholder":true,"num":0}}`, ``, `]`, `{"_placeholder":false,"num":0}`,
	} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, text []byte, n uint8) {
		att := make([][]byte, n%4)
		for i := range att {
			att[i] = []byte{byte(i)}
		}
		args, err := decodeArgs(text, att)
		if err != nil {
			return
		}
		body, back := encodeArgs(args)
		if len(back) > 4*len(text)+len(att) || !json.Valid(append(append([]byte("["), body...), ']')) {
			t.Fatalf("decodeArgs(%q) re-encoded as %q with %d attachments", text, body, len(back))
		}
	})
}

// checkDecodeEvent compares decodeEvent with encoding/json on b.
func checkDecodeEvent(t *testing.T, b []byte) {
	name, arg, err := decodeEvent(b)
	var arr []json.RawMessage
	var wantName string
	wantErr := json.Unmarshal(b, &arr) != nil || len(arr) == 0 || arr[0][0] != '"' || json.Unmarshal(arr[0], &wantName) != nil
	if wantErr != (err != nil) {
		t.Fatalf("decodeEvent(%q): err %v; encoding/json says error=%v", b, err, wantErr)
	}
	if err != nil {
		return
	}
	var wantArg []byte
	if len(arr) > 1 {
		wantArg = arr[1]
	}
	if name != wantName || !bytes.Equal(arg, wantArg) {
		t.Fatalf("decodeEvent(%q) = %q, %s; want %q, %s", b, name, arg, wantName, wantArg)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{`["a"]`, `["a",{"b":[1,"]"]},2]`, `["a\"",true]`, `[1]`, `[]`, `["x",]`, `"x"`, ` [ "a" , null ] `} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecodeEvent)
}

// decodePayloadV3Binary hands on only what the body holds: text packets
// as they are (a text packet may start with "b" too), binary ones in the
// engine's text form.
func FuzzPayloadV3Binary(f *testing.F) {
	for _, s := range []string{"\x00\x02\xff40", "\x01\x04\xff\x04abc", "\x00\x01\x00\xff4", "\x02\x01\xff4", "\x00\xff", "\x01\x01\xff\x03", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodePayloadV3Binary(b, func(p []byte) error {
			if len(p) > 2*len(b)+2 {
				t.Fatalf("a packet of %d bytes from %d", len(p), len(b))
			}
			if p[0] != eioBinary && !bytes.Contains(b, p) {
				t.Fatalf("a text packet %q that is not in %q", p, b)
			}
			return nil
		})
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
