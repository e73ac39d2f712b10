package main

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxIDBytes is the longest roomId or userId, in bytes (PROTOCOL.md).
const maxIDBytes = 128

// validID reports whether s may be used as a roomId or userId: 1 to 128 bytes
// of valid UTF-8 with no control characters and no '{' or '}' (they would
// corrupt Redis hash tags).
func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '{' || r == '}' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validConnID reports whether s has the shape of an id made by newID. A
// connId from a client is checked with it before it goes near a Redis key.
func validConnID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// object is a decoded JSON object whose values are still raw.
type object map[string]json.RawMessage

// decodeObject decodes a client payload. An absent payload or null is the
// empty object; anything but an object is invalid_payload.
func decodeObject(raw json.RawMessage) (object, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return object{}, nil
	}
	if raw[0] != '{' {
		return nil, invalid("payload must be a JSON object")
	}
	// encoding/json would replace invalid UTF-8 and lone surrogates with
	// U+FFFD, making two different ids one: refuse them on the raw text.
	if !utf8.Valid(raw) {
		return nil, invalid("payload is not valid UTF-8")
	}
	if hasLoneSurrogate(raw) {
		return nil, invalid("payload has a lone surrogate escape")
	}
	var o object
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, invalid("payload is not valid JSON")
	}
	return o, nil
}

// hasLoneSurrogate reports whether JSON text b has a \u escape of a UTF-16
// surrogate that is not part of a high-low pair. In valid JSON a backslash
// only occurs inside strings, so no string tracking is needed; invalid JSON
// is refused by the decoder anyway.
func hasLoneSurrogate(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 < len(b) && b[i+1] != 'u' {
			i++ // \", \\, \n...: the escaped byte is not an escape itself
			continue
		}
		r, ok := hex4(b, i+2)
		switch {
		case !ok:
			return false // not JSON: the decoder refuses it
		case r >= 0xdc00 && r <= 0xdfff:
			return true // low surrogate without a high one before it
		case r >= 0xd800 && r <= 0xdbff:
			lo, ok := hex4(b, i+8)
			if !ok || b[i+6] != '\\' || b[i+7] != 'u' || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// has reports whether the object has key with a value other than null.
func (o object) has(key string) bool {
	v, ok := o[key]
	return ok && string(v) != "null"
}

// id reads a required roomId or userId field.
func (o object) id(key string) (string, error) {
	var s string
	if !o.has(key) {
		return "", invalid(key + " is required")
	}
	if err := json.Unmarshal(o[key], &s); err != nil {
		return "", invalid(key + " must be a string")
	}
	if !validID(s) {
		return "", invalid(key + " must be 1 to 128 bytes of UTF-8 without control characters, '{' or '}'")
	}
	return s, nil
}

// integer reads an optional integer field; ok is false when it is absent.
func (o object) integer(key string) (v int64, ok bool, err error) {
	if !o.has(key) {
		return 0, false, nil
	}
	v, perr := strconv.ParseInt(string(bytes.TrimSpace(o[key])), 10, 64)
	if perr != nil || v < 0 {
		return 0, false, invalid(key + " must be a non-negative integer")
	}
	return v, true, nil
}

// field is one top-level key of a state object, both parts as canonical JSON.
// An empty val means the key is deleted (null in a patch).
type field struct{ key, val string }

// stateFields parses the optional state or patch object at key into its
// fields, sorted by key. Values are re-encoded canonically (compact, no HTML
// escaping, object keys sorted, numbers as JSON.stringify writes them) so
// that equal values compare equal as strings in Redis.
func (o object) stateFields(key string) ([]field, error) {
	if !o.has(key) {
		return nil, nil
	}
	raw := bytes.TrimSpace(o[key])
	if raw[0] != '{' {
		return nil, invalid(key + " must be a JSON object")
	}
	// Numbers decode as float64 and so re-encode as JSON.stringify writes
	// them (1.50 is 1.5); one beyond float64 (1e400) is refused.
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid(key + " must be a JSON object with finite numbers")
	}
	fields := make([]field, 0, len(m))
	for k, v := range m {
		f := field{key: string(canonicalJSON(k))}
		if v != nil {
			f.val = string(canonicalJSON(v))
		}
		fields = append(fields, f)
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].key < fields[j].key })
	return fields, nil
}

// stateJSON assembles the state object from fields, leaving out deleted ones,
// the way the scripts do.
func stateJSON(fields []field) string {
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		if f.val != "" {
			parts = append(parts, f.key+":"+f.val)
		}
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// canonicalJSON encodes v as JSON.stringify would: compact and without HTML
// escaping. encoding/json always escapes U+2028 and U+2029; they are put
// back as the raw characters so that sizes match what clients measure.
func canonicalJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte("null") // v came from json.Unmarshal or is a string: cannot happen
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if !bytes.Contains(out, []byte(`\u202`)) {
		return out
	}
	return unescapeLineSeparators(out)
}

// unescapeLineSeparators replaces the escapes \u2028 and \u2029 in JSON text
// with the characters themselves, leaving escaped backslashes alone.
func unescapeLineSeparators(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+5 < len(b) && (string(b[i+2:i+6]) == "2028" || string(b[i+2:i+6]) == "2029") {
			out = utf8.AppendRune(out, 0x2028+rune(b[i+5]-'8')) // '8' or '9'
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// jsonString encodes s as a JSON string, without HTML escaping.
func jsonString(s string) string { return string(canonicalJSON(s)) }

// asciiJSON returns JSON text b with every non-ASCII character written as a
// \u escape (UTF-16 surrogate pairs beyond the BMP). Outside strings JSON is
// ASCII, so the result means the same. It returns b itself when b is ASCII.
// go-socket.io's polling transport counts payload lengths in bytes where
// Engine.IO clients count characters: ASCII-only packets make both agree.
func asciiJSON(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf {
		i++
	}
	if i == len(b) {
		return b
	}
	const hex = "0123456789abcdef"
	out := make([]byte, i, len(b)+len(b)/2)
	copy(out, b[:i])
	esc := func(r rune) {
		out = append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			out = append(out, b[i])
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r > 0xffff {
			r -= 0x10000
			esc(0xd800 + r>>10)
			esc(0xdc00 + r&0x3ff)
			continue
		}
		esc(r)
	}
	return out
}
