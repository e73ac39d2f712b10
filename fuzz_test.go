package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"rtm/client"
)

// FuzzPayload checks validation and canonical state encoding: no input
// panics, and a state that validates re-encodes to a JSON object equal to
// the input minus its null-valued keys.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{
		`{"roomId":"r","userId":"u","state":{"a":1,"b":[1,{"c":null}],"d":"<&>"}}`,
		`{"roomId":"r","userId":"u","state":{"a":null}}`,
		`{"state":{"\u2028":"\u2029","é":"😀","k":1e400}}`,
		`{"state":[1]}`, `{"state":"x"}`, `[]`, `null`, ``, `{"roomId":"a{b}"}`,
		`{"epoch":1.0}`, `{"epoch":-0}`, `{"epoch":99999999999999999999}`,
		`{"state":{"n":12345678901234567890.5}}`, `{"roomId":"\ud800"}`, "{\"roomId\":\"\xff\"}",
		`{"roomId":"\udbff","userId":"\udc00"}`, `{"state":{"k":["\ud83d\ude00","\\ud800"]}}`,
		`{"roomId":"bob\u2028","state":{"\u2029":"\u201c"}}`, `{"state":{"k":"\ud83d\n"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := decodeObject(data)
		if err != nil {
			return
		}
		// Nothing accepted is silently replaced: a U+FFFD in the decoded
		// payload was in the input, raw or escaped.
		var all any
		if json.Unmarshal(data, &all) == nil && bytes.Contains(canonicalJSON(all), []byte("\ufffd")) &&
			!bytes.Contains(data, []byte("\ufffd")) && !bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`)) {
			t.Fatalf("%q was accepted and decodes with U+FFFD", data)
		}
		if room, err := o.id("roomId"); err == nil && !validID(room) {
			t.Fatalf("id accepted an invalid id %q", room)
		}
		_, _, _ = o.integer("epoch")
		fields, err := o.stateFields("state")
		if err != nil || fields == nil {
			return
		}
		st := stateJSON(fields)
		var got, want map[string]any
		if err := json.Unmarshal([]byte(st), &got); err != nil {
			t.Fatalf("state %q does not re-encode to JSON: %v", st, err)
		}
		if err := json.Unmarshal(o["state"], &want); err != nil {
			t.Fatalf("input state no longer parses: %v", err)
		}
		maps.DeleteFunc(want, func(_ string, v any) bool { return v == nil })
		// Compared decoded, not re-encoded: a rewrite inside canonicalJSON
		// (U+2028 once became U+201C) would hide on both sides.
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("state %s re-encoded as %s", o["state"], st)
		}
	})
}

// referenceMerge is the shallow merge of PROTOCOL.md, in Go.
func referenceMerge(state map[string]any, patch map[string]any) map[string]any {
	out := maps.Clone(state)
	for k, v := range patch {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// FuzzStateMerge drives the join and patch scripts in a real Redis and
// compares the merged state, the changed flag, the epoch and the size rule
// with referenceMerge.
func FuzzStateMerge(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":1}`, `{"a":null,"b":2}`},
		{`{"a":1}`, `{"a":1}`},
		{`{"a":{"x":[1,2]}}`, `{"a":{"x":[1,2]},"c":"😀"}`},
		{`{}`, `{"big":"` + string(bytes.Repeat([]byte("x"), 4088)) + `"}`},
		{`{"big":"` + string(bytes.Repeat([]byte("<"), 4000)) + `"}`, `{"more":"` + string(bytes.Repeat([]byte("&"), 100)) + `"}`},
		{`{"n":1.50}`, `{"n":1.5}`},
		{`{"k":"\u2028"}`, `{"k":null,"z":null}`},
		{`{"\u2029":"\u2028"}`, `{"\u2029":"\u201d","\u2028":"\u201c"}`},
		{`{"a":"` + string(bytes.Repeat([]byte("x"), 4000)) + `"}`, `{"b":"` + string(bytes.Repeat([]byte("y"), 81)) + `"}`},
		{`{"a":"` + string(bytes.Repeat([]byte("x"), 4000)) + `"}`, `{"b":"` + string(bytes.Repeat([]byte("y"), 82)) + `"}`},
		{`{"a":"` + string(bytes.Repeat([]byte("x"), 4000)) + `"}`, `{"b":"` + string(bytes.Repeat([]byte("<"), 60)) + `"}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	opts := testOptions(f)
	opts.Presence = opts.Presence.withDefaults()
	p, err := NewPresence(opts.Presence)
	if err != nil {
		f.Fatal(err)
	}
	p.pool = newPool(redisDialer(sharedRedisURL, nil))
	p.metrics = newMetrics(&Server{hub: newHub(opts.Logger)})
	f.Cleanup(func() { p.pool.Close() })
	f.Fuzz(func(t *testing.T, initial, patch []byte) {
		io, err := decodeObject([]byte(`{"state":` + string(initial) + `}`))
		if err != nil {
			return
		}
		initFields, err := io.stateFields("state")
		if err != nil {
			return
		}
		po, err := decodeObject([]byte(`{"patchState":` + string(patch) + `}`))
		if err != nil {
			return
		}
		patchFields, err := po.stateFields("patchState")
		if err != nil || len(patchFields) == 0 {
			return
		}
		st := stateJSON(initFields)
		if len(st) > p.opts.MaxStateBytes {
			return
		}
		ctx := tctx(t)
		room, sid, connID := "fuzz-"+newID(), newID(), newID()
		args := p.joinArgs(room, sid, connID, "", "u", `"u"`, st, 60000, 120000, p.opts.MaxStateBytes, "", "0", "full", 100, 0)
		for _, fl := range initFields {
			if fl.val != "" {
				args = beforeLast(args, fl.key, fl.val)
			}
		}
		if _, err := p.do(ctx, joinScript, args...); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = p.do(ctx, leaveScript, p.connArgs(room, sid, connID)...) }()
		code, epoch, changed, err := p.patch(ctx, bareSocket(sid), room, connID, 1, patchFields)
		if err != nil {
			t.Fatal(err)
		}
		var initMap, patchMap map[string]any
		_ = json.Unmarshal([]byte(st), &initMap)
		dec := json.NewDecoder(bytes.NewReader(po["patchState"]))
		dec.UseNumber()
		_ = dec.Decode(&patchMap)
		initMap = roundTrip(initMap)
		want := referenceMerge(initMap, roundTrip(patchMap))
		stored, err := redis.String(p.do(ctx, snapshotScript, p.roomArgs(room, "", nil)...))
		if err != nil {
			t.Fatal(err)
		}
		var snap client.Snapshot
		if err := json.Unmarshal([]byte(stored), &snap); err != nil || len(snap.Connections) != 1 {
			t.Fatalf("snapshot %s: %v", stored, err)
		}
		var got map[string]any
		_ = json.Unmarshal(snap.Connections[0].State, &got)
		wantSize := stringifiedSize(want)
		if wantSize > p.opts.MaxStateBytes {
			if code != 3 || !equalJSON(got, initMap) || snap.Connections[0].Epoch != 1 {
				t.Fatalf("merged size %d over the limit: got code %d state %v epoch %d; want code 3, state unchanged",
					wantSize, code, got, snap.Connections[0].Epoch)
			}
			return
		}
		wantChanged := !equalJSON(want, initMap)
		if code != 0 || !equalJSON(got, want) || changed != wantChanged || (changed && epoch != 2) || (!changed && epoch != 1) {
			t.Fatalf("merge %s + %s: got code %d state %v changed %v epoch %d; want %v changed %v",
				initial, patch, code, got, changed, epoch, want, wantChanged)
		}
	})
}

// roundTrip returns m as encoding/json reads it back (numbers as float64),
// without the code under test: a bug in the server's encoding cannot hide
// from the comparison by being on both sides of it.
func roundTrip(m map[string]any) map[string]any {
	var out map[string]any
	if b, err := json.Marshal(m); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out
}

func equalJSON(a, b map[string]any) bool { return reflect.DeepEqual(roundTrip(a), roundTrip(b)) }

// stringifiedSize returns the length of JSON.stringify(m) in UTF-8:
// compact, no HTML escaping, U+2028 and U+2029 as themselves (3 bytes)
// where encoding/json writes a 6-byte escape.
func stringifiedSize(m map[string]any) int {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return b.Len() - 1 - 3*lineSeparators(m)
}

// lineSeparators counts U+2028 and U+2029 in v's keys and strings.
func lineSeparators(v any) int {
	n := 0
	switch v := v.(type) {
	case string:
		n = strings.Count(v, "\u2028") + strings.Count(v, "\u2029")
	case map[string]any:
		for k, x := range v {
			n += lineSeparators(k) + lineSeparators(x)
		}
	case []any:
		for _, x := range v {
			n += lineSeparators(x)
		}
	}
	return n
}
