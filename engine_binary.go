package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

// Binary packets (Socket.IO BINARY_EVENT and BINARY_ACK). The packet is an
// ordinary text message whose JSON holds a placeholder
// {"_placeholder":true,"num":n} where each attachment goes; the
// attachments follow it, in order, as Engine.IO binary messages: a
// websocket binary frame of the data (v3: prefixed with the message type
// byte 4), or in a polling payload "b" and base64 (v3: "b4" and base64).
// The engine keeps them in that text form ("b<base64>", "b4<base64>" for v3)
// from the websocket reader to the websocket writer, which turns them back
// into binary frames.
//
// A client's binary event waits in its session (session.bin) until its
// last attachment has come; nothing but pings, pongs and attachments may
// come between. Its attachments are bounded in number (maxAttachments) and,
// together, in size (the message limit): a client over either is refused as
// a message over the limit is (websocket close 1009, polling 413).

// maxAttachments bounds the attachments of one binary packet.
const maxAttachments = 16

// errAttachmentLimit is a binary packet over maxAttachments, or whose
// attachments together are over the message limit.
var errAttachmentLimit = errors.New("engine: binary attachments over the limit")

// pendingBinary is a client's binary event waiting for its attachments.
type pendingBinary struct {
	pkt  sioPacket // its data copied: the reader's buffer is reused
	att  [][]byte
	size int // bytes of att together
}

// startBinary takes a client's BINARY_EVENT: it waits for its attachments,
// or is handled at once when it announces none. s.rmu is held.
func (e *Engine) startBinary(s *session, p sioPacket) error {
	if p.attached > maxAttachments {
		return errAttachmentLimit
	}
	if p.attached == 0 {
		return e.dispatchEvent(s, p, nil)
	}
	p.data = bytes.Clone(p.data)
	s.bin = &pendingBinary{pkt: p, att: make([][]byte, 0, p.attached)}
	return nil
}

// attach takes one Engine.IO binary message from the client: the next
// attachment of its pending binary event, which is handled once whole.
// s.rmu is held.
func (e *Engine) attach(s *session, p []byte) error {
	pb := s.bin
	if pb == nil {
		return errBadPacket // binary data that no packet announced
	}
	enc := p[1:]
	if s.proto == 3 {
		if len(enc) == 0 || enc[0] != eioMessage {
			return errBadPacket
		}
		enc = enc[1:]
	}
	if pb.size+base64.StdEncoding.DecodedLen(len(enc)) > e.opts.maxMessage+3 {
		return errAttachmentLimit
	}
	data, err := base64.StdEncoding.AppendDecode(nil, enc)
	if err != nil {
		return errBadPacket
	}
	if pb.size += len(data); pb.size > e.opts.maxMessage {
		return errAttachmentLimit
	}
	pb.att = append(pb.att, data)
	if len(pb.att) < pb.pkt.attached {
		return nil
	}
	s.bin = nil
	return e.dispatchEvent(s, pb.pkt, pb.att)
}

// attachmentFrame returns data as an Engine.IO binary message of protocol
// version proto, in the engine's text form.
func attachmentFrame(proto int, data []byte) []byte {
	prefix := []byte{eioBinary}
	if proto == 3 {
		prefix = append(prefix, eioMessage)
	}
	return base64.StdEncoding.AppendEncode(prefix, data)
}

// packetFrames returns the Engine.IO messages of one server packet: typ is
// sioEvent or sioAck, nsp its namespace, id its ack id (or -1), body the
// JSON array's elements (an event's name first). With attachments it is a
// binary packet, followed by one binary message per attachment.
func packetFrames(proto int, typ byte, nsp string, id int64, body []byte, att [][]byte) [][]byte {
	b := make([]byte, 0, len(body)+len(nsp)+32)
	b = append(b, eioMessage)
	if len(att) > 0 {
		b = append(b, typ+3) // 2 EVENT → 5 BINARY_EVENT, 3 ACK → 6 BINARY_ACK
		b = strconv.AppendInt(b, int64(len(att)), 10)
		b = append(b, '-')
	} else {
		b = append(b, typ)
	}
	if nsp != "/" {
		b = append(append(b, nsp...), ',')
	}
	if id >= 0 {
		b = strconv.AppendInt(b, id, 10)
	}
	b = append(append(append(b, '['), body...), ']')
	frames := make([][]byte, 0, 1+len(att))
	frames = append(frames, b)
	for _, a := range att {
		frames = append(frames, attachmentFrame(proto, a))
	}
	return frames
}

// decodeArgs decodes an event's arguments (splitEvent's text) as
// encoding/json decodes into any (numbers are float64), each placeholder
// replaced by its attachment, as []byte. A placeholder naming no attachment
// is malformed.
func decodeArgs(text []byte, att [][]byte) ([]any, error) {
	if len(text) == 0 {
		return nil, nil
	}
	buf := make([]byte, 0, len(text)+2)
	buf = append(append(append(buf, '['), text...), ']')
	var args []any
	if err := json.Unmarshal(buf, &args); err != nil {
		return nil, errBadPacket
	}
	for i, a := range args {
		v, err := fillPlaceholders(a, att)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	return args, nil
}

// fillPlaceholders returns v with each placeholder in it replaced by its
// attachment.
func fillPlaceholders(v any, att [][]byte) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if ph, _ := x["_placeholder"].(bool); ph && len(x) == 2 {
			num, ok := x["num"].(float64)
			if !ok || num < 0 || num >= float64(len(att)) || num != math.Trunc(num) {
				return nil, errBadPacket
			}
			return att[int(num)], nil
		}
		for k, e := range x {
			f, err := fillPlaceholders(e, att)
			if err != nil {
				return nil, err
			}
			x[k] = f
		}
	case []any:
		for i, e := range x {
			f, err := fillPlaceholders(e, att)
			if err != nil {
				return nil, err
			}
			x[i] = f
		}
	}
	return v, nil
}

// placeholder stands for an attachment in a binary packet's JSON.
type placeholder struct {
	Placeholder bool `json:"_placeholder"`
	Num         int  `json:"num"`
}

// encodeArgs encodes values as the elements of an event's or ack's JSON
// array: each []byte in them, at the top or within []any and
// map[string]any values, becomes a placeholder and an attachment.
func encodeArgs(values []any) (text []byte, att [][]byte) {
	repl := make([]any, len(values))
	for i, v := range values {
		repl[i] = extractBinary(v, &att)
	}
	b := canonicalJSON(repl)
	if len(b) < 2 || b[0] != '[' {
		return nil, nil
	}
	return b[1 : len(b)-1], att
}

// extractBinary returns v with its []byte values replaced by placeholders,
// appended to att. Maps and slices are copied, not changed.
func extractBinary(v any, att *[][]byte) any {
	switch x := v.(type) {
	case []byte:
		*att = append(*att, x)
		return placeholder{Placeholder: true, Num: len(*att) - 1}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = extractBinary(e, att)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = extractBinary(e, att)
		}
		return out
	}
	return v
}
