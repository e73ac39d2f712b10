package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// This file holds the wire codecs of both protocol generations:
//
//   - Engine.IO packets: one type digit, then data. 0 open, 1 close, 2 ping,
//     3 pong, 4 message, 5 upgrade, 6 noop. The same in v3 and v4, over
//     websocket one packet per text frame.
//   - Polling payloads, which carry several packets in one HTTP body: v3
//     writes each as "<length>:<packet>" with the length in UTF-16 code units
//     (what a JavaScript string's length counts); v4 joins them with the
//     record separator 0x1e.
//   - Socket.IO packets inside an Engine.IO message:
//     <type>[<attachments>-][<namespace>,][<ack id>][<json>], type 0 CONNECT,
//     1 DISCONNECT, 2 EVENT, 3 ACK, 4 ERROR (v5: CONNECT_ERROR), 5 BINARY_EVENT,
//     6 BINARY_ACK. A binary packet's JSON holds placeholders
//     {"_placeholder":true,"num":n} for its attachments, which follow it as
//     Engine.IO binary messages (engine_binary.go). Its attachment count is
//     checked against maxAttachments before anything waits for them. Clients
//     never send BINARY_ACK (the server asks for no acknowledgements), and
//     "/" takes no binary events (revision 2 refuses them).
//
// Decoders never allocate in proportion to a number the client wrote, only
// to the bytes it sent, and every decoder has a fuzz target.

// Engine.IO packet types.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
	eioUpgrade = '5'
	eioNoop    = '6'
	// eioBinary starts a v4 binary message in text form: "b" and base64 (a
	// polling payload's form; over websocket it is a binary frame). Only the
	// conformance echo mode takes binary data.
	eioBinary = 'b'
)

// Socket.IO packet types.
const (
	sioConnect     = '0'
	sioDisconnect  = '1'
	sioEvent       = '2'
	sioAck         = '3'
	sioError       = '4'
	sioBinaryEvent = '5'
	sioBinaryAck   = '6'
)

// maxAckIDDigits bounds an ack id: JavaScript clients count from 0 and
// never reach 2^53.
const maxAckIDDigits = 15

// Decoding errors. They end the sender's session only.
var (
	errBadPacket    = errors.New("engine: malformed packet")
	errBinaryPacket = errors.New("engine: binary packet refused") // acks from clients; events of "/"
	errBadPayload   = errors.New("engine: malformed polling payload")
)

// sioPacket is one decoded Socket.IO packet. data aliases the input.
type sioPacket struct {
	typ      byte
	nsp      string // "/" for the default namespace
	id       int64  // -1 when the packet carries no ack id
	data     []byte // the JSON after the header, possibly empty
	isNsp    bool   // the packet named a namespace other than "/"
	attached int    // BINARY_EVENT: the attachments announced
}

// maxAttachmentDigits bounds the digits of an attachment count: more is
// malformed, not merely over the limit.
const maxAttachmentDigits = 3

// decodeSIO parses a Socket.IO packet (an Engine.IO message's data).
func decodeSIO(b []byte) (sioPacket, error) {
	p := sioPacket{nsp: "/", id: -1}
	if len(b) == 0 {
		return p, errBadPacket
	}
	p.typ = b[0]
	switch p.typ {
	case sioConnect, sioDisconnect, sioEvent, sioAck, sioError, sioBinaryEvent:
	case sioBinaryAck:
		return p, errBinaryPacket
	default:
		return p, errBadPacket
	}
	b = b[1:]
	if p.typ == sioBinaryEvent {
		dash := bytes.IndexByte(b, '-')
		if dash <= 0 || dash > maxAttachmentDigits {
			return p, errBadPacket
		}
		for _, c := range b[:dash] {
			if c < '0' || c > '9' {
				return p, errBadPacket
			}
			p.attached = p.attached*10 + int(c-'0')
		}
		b = b[dash+1:]
	}
	if len(b) > 0 && b[0] == '/' {
		end := bytes.IndexByte(b, ',')
		if end < 0 {
			end = len(b)
		}
		if end > maxNamespaceLen {
			return p, errBadPacket
		}
		p.nsp = string(b[:end])
		p.isNsp = p.nsp != "/"
		b = b[min(end+1, len(b)):]
	}
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n > maxAckIDDigits {
		return p, errBadPacket
	}
	if n > 0 {
		p.id, _ = strconv.ParseInt(string(b[:n]), 10, 64)
	}
	p.data = b[n:]
	return p, nil
}

// decodeEvent splits an EVENT packet's data, a JSON array whose first element
// is the event name, into the name and the first argument (nil when there is
// none; a copy, the caller may keep it). Further arguments are ignored: no
// event of the protocol has any. The array is checked once with json.Valid
// (no allocation) and then split by a scanner that may trust it.
func decodeEvent(data []byte) (string, json.RawMessage, error) {
	if !json.Valid(data) {
		return "", nil, errBadPacket
	}
	i := skipSpace(data, 0)
	if data[i] != '[' {
		return "", nil, errBadPacket
	}
	i = skipSpace(data, i+1)
	if data[i] != '"' {
		return "", nil, errBadPacket
	}
	end := endOfValue(data, i)
	var name string
	if raw := data[i:end]; plainASCII(raw) {
		name = string(raw[1 : len(raw)-1])
	} else if json.Unmarshal(raw, &name) != nil {
		return "", nil, errBadPacket
	}
	i = skipSpace(data, end)
	if data[i] == ']' {
		return name, nil, nil
	}
	i = skipSpace(data, i+1) // past the comma
	return name, bytes.Clone(data[i:endOfValue(data, i)]), nil
}

// splitEvent splits an EVENT packet's data, a JSON array whose first element
// is the event name, into the name and the text of the other elements, as
// they stand between the name's comma and the closing bracket (empty when
// there are none; it aliases data).
func splitEvent(data []byte) (string, []byte, error) {
	if !json.Valid(data) {
		return "", nil, errBadPacket
	}
	i := skipSpace(data, 0)
	if data[i] != '[' {
		return "", nil, errBadPacket
	}
	i = skipSpace(data, i+1)
	if data[i] != '"' {
		return "", nil, errBadPacket
	}
	end := endOfValue(data, i)
	var name string
	if json.Unmarshal(data[i:end], &name) != nil {
		return "", nil, errBadPacket
	}
	i = skipSpace(data, end)
	if data[i] == ']' {
		return name, nil, nil
	}
	last := bytes.LastIndexByte(data, ']')
	return name, bytes.TrimSpace(data[i+1 : last]), nil
}

// plainASCII reports whether JSON string literal b is printable ASCII
// without escapes: its text is then its value.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfValue returns the index just past the JSON value starting at i, in
// text already known to be valid JSON.
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = endOfValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != ']' && b[i] != '}' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// appendEvent appends the Engine.IO message carrying the Socket.IO event
// 42["event",data] (data nil: no argument).
func appendEvent(dst []byte, event string, data []byte) []byte {
	dst = append(dst, `42["`...)
	dst = append(dst, event...) // event names are ours: plain ASCII
	dst = append(dst, '"')
	if data != nil {
		dst = append(dst, ',')
		dst = append(dst, data...)
	}
	return append(dst, ']')
}

// eventFrame returns the Engine.IO message for one event: built once per
// event, however many sockets it goes to.
func eventFrame(event string, data []byte) []byte {
	return appendEvent(make([]byte, 0, len(event)+len(data)+8), event, data)
}

// ackFrame returns the Engine.IO message answering ack id with data: 43<id>[data].
func ackFrame(id int64, data []byte) []byte {
	b := make([]byte, 0, len(data)+24)
	b = append(b, "43"...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, '[')
	b = append(b, data...)
	return append(b, ']')
}

// decodePayloadV3 splits an Engine.IO v3 text payload into its packets. Each
// length counts UTF-16 code units of the packet that follows.
func decodePayloadV3(b []byte, each func([]byte) error) error {
	if len(b) == 0 {
		return errBadPayload
	}
	for len(b) > 0 {
		colon := bytes.IndexByte(b, ':')
		if colon <= 0 || colon > 10 {
			return errBadPayload
		}
		units, err := strconv.Atoi(string(b[:colon]))
		if err != nil || units <= 0 {
			return errBadPayload
		}
		b = b[colon+1:]
		n := 0
		for units > 0 {
			if n >= len(b) {
				return errBadPayload
			}
			r, size := utf8.DecodeRune(b[n:])
			if r == utf8.RuneError && size <= 1 {
				return errBadPayload
			}
			n += size
			if r > 0xffff {
				units -= 2
			} else {
				units--
			}
		}
		if units < 0 { // the length split a surrogate pair
			return errBadPayload
		}
		if err := each(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// decodePayloadV3Binary splits an Engine.IO v3 binary payload (a POST of
// Content-Type application/octet-stream: what socket.io-client 2.x sends
// over XHR2 when a packet is binary) into its packets. Each is a byte 0
// (text) or 1 (binary), its length in bytes as decimal digits of one byte
// each, 0xff, and the packet. A binary packet's first byte is its type
// (4, a message); it is handed on in the engine's text form, "b4" and
// base64 of the rest.
func decodePayloadV3Binary(b []byte, each func([]byte) error) error {
	if len(b) == 0 {
		return errBadPayload
	}
	for len(b) > 0 {
		kind, n, i := b[0], 0, 1
		if kind > 1 {
			return errBadPayload
		}
		for ; i < len(b) && b[i] != 0xff; i++ {
			if b[i] > 9 || i > 10 {
				return errBadPayload
			}
			n = n*10 + int(b[i])
		}
		if i == 1 || i >= len(b) || n == 0 || n > len(b)-i-1 {
			return errBadPayload
		}
		p := b[i+1 : i+1+n]
		b = b[i+1+n:]
		switch {
		case kind == 0 && !utf8.Valid(p), kind == 1 && p[0] != 4:
			return errBadPayload
		case kind == 1:
			p = attachmentFrame(3, p[1:])
		}
		if err := each(p); err != nil {
			return err
		}
	}
	return nil
}

// decodePayloadV4 splits an Engine.IO v4 payload into its packets.
func decodePayloadV4(b []byte, each func([]byte) error) error {
	if len(b) == 0 {
		return errBadPayload
	}
	for len(b) > 0 {
		end := bytes.IndexByte(b, 0x1e)
		if end < 0 {
			end = len(b)
		}
		if end == 0 || !utf8.Valid(b[:end]) {
			return errBadPayload
		}
		if err := each(b[:end]); err != nil {
			return err
		}
		if end == len(b) {
			break
		}
		b = b[end+1:]
	}
	return nil
}

// writePayload writes packet p to a polling response body of protocol
// version v; first says whether it is the body's first packet.
func writePayload(b *bytes.Buffer, v int, p []byte, first bool) {
	if v == 3 {
		var n [20]byte
		b.Write(strconv.AppendInt(n[:0], int64(utf16Len(p)), 10))
		b.WriteByte(':')
	} else if !first {
		b.WriteByte(0x1e)
	}
	b.Write(p)
}

// utf16Len returns the length of UTF-8 text b in UTF-16 code units.
func utf16Len(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c < utf8.RuneSelf:
			i++
			n++
		case c >= 0xf0: // four bytes: a surrogate pair
			i += 4
			n += 2
		case c >= 0xe0:
			i += 3
			n++
		default:
			i += 2
			n++
		}
	}
	return n
}
