package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// Lone surrogate escapes anywhere in a payload are invalid_payload; pairs
// (written in either case) pass, and so does an escaped backslash before a u.
func TestDecodeObjectSurrogates(t *testing.T) {
	for name, tc := range map[string]struct {
		payload string
		ok      bool
	}{
		"high alone in roomId":       {`{"roomId":"\ud800"}`, false},
		"other high alone":           {`{"roomId":"\udbff"}`, false},
		"low alone":                  {`{"roomId":"\udc00"}`, false},
		"last low alone":             {`{"userId":"a\udfffb"}`, false},
		"high at end of string":      {`{"userId":"ab\ud83d"}`, false},
		"high then plain escape":     {`{"userId":"\ud83d\n"}`, false},
		"high then high":             {`{"userId":"\ud83d\ud83d"}`, false},
		"low then high":              {`{"userId":"\ude00\ud83d"}`, false},
		"uppercase lone":             {`{"userId":"\uD800x"}`, false},
		"in a state key":             {`{"state":{"\ud800":1}}`, false},
		"in a state value":           {`{"state":{"k":"\udc01"}}`, false},
		"nested deep":                {`{"state":{"k":[{"x":["\ud800"]}]}}`, false},
		"in chat text":               {`{"text":"hi \udbff"}`, false},
		"in resume":                  {`{"resume":{"connId":"\ud800","epoch":1}}`, false},
		"invalid UTF-8":              {"{\"roomId\":\"\xff\"}", false},
		"UTF-8 encoded surrogate":    {"{\"roomId\":\"\xed\xa0\x80\"}", false},
		"pair":                       {`{"roomId":"\ud83d\ude00"}`, true},
		"pair uppercase":             {`{"roomId":"\uD83D\uDE00"}`, true},
		"two pairs":                  {`{"state":{"\ud83d\ude00":"\udbff\udfff"}}`, true},
		"raw emoji":                  {`{"roomId":"😀"}`, true},
		"escaped backslash then u":   {`{"roomId":"\\ud800"}`, true},
		"escaped quote before":       {`{"roomId":"\"\u00e9"}`, true},
		"line separators":            {`{"roomId":"\u2028\u2029"}`, true},
		"U+FFFD itself":              {`{"roomId":"\ufffd"}`, true},
		"three backslashes then esc": {`{"roomId":"\\\ud800"}`, false},
	} {
		_, err := decodeObject(json.RawMessage(tc.payload))
		var pe *Error
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: got %v; want accepted", name, err)
		case !tc.ok && (!errors.As(err, &pe) || pe.Code != "invalid_payload"):
			t.Errorf("%s: got %v; want invalid_payload", name, err)
		}
	}
}

// U+2028 and U+2029 come out of canonical encoding as themselves, however
// they were written in, and an escaped backslash before "u2028" stays text.
func TestCanonicalJSONLineSeparators(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"escaped":           {`"a\u2028b\u2029c"`, "\"a\u2028b\u2029c\""},
		"raw":               {"\"\u2028\u2029\"", "\"\u2028\u2029\""},
		"next to U+201C":    {`"\u201c\u2028\u201d\u2029"`, "\"\u201c\u2028\u201d\u2029\""},
		"escaped backslash": {`"\\u2028"`, `"\\u2028"`},
		"in a key":          {`{"\u2029":"\u2028"}`, "{\"\u2029\":\"\u2028\"}"},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		if got := string(canonicalJSON(v)); got != tc.want {
			t.Errorf("%s: got %q; want %q", name, got, tc.want)
		}
	}
	o, err := decodeObject(json.RawMessage(`{"state":{"k\u2028":"v\u2029"}}`))
	if err != nil {
		t.Fatal(err)
	}
	fields, err := o.stateFields("state")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stateJSON(fields), "{\"k\u2028\":\"v\u2029\"}"; got != want {
		t.Fatalf("got state %q; want %q", got, want)
	}
}

// asciiJSON writes every non-ASCII character as \u escapes (pairs beyond the
// BMP) and changes nothing else: the result is ASCII and means the same.
func TestASCIIJSON(t *testing.T) {
	for _, in := range []string{
		`{"a":1}`,
		`{"k\u2028":"v\u2029","e":"😀😁𐀁","z":"zoë 中文","q":"\"\\"}`,
		"{\"raw\":\"\u2028\u2029😀é\U0010FFFF\"}",
	} {
		out := asciiJSON([]byte(in))
		for _, c := range out {
			if c >= 0x80 {
				t.Fatalf("%s: got %q; want ASCII only", in, out)
			}
		}
		var got, want any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: got %q: %v", in, out, err)
		}
		_ = json.Unmarshal([]byte(in), &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %v; want %v", in, got, want)
		}
	}
}
