package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Engine.IO packet types, the same in versions 3 and 4: the first byte of
// every websocket text frame.
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'
)

// Socket.IO packet types, the same in protocols 4 and 5: the byte after the
// Engine.IO message type. In protocol 5, type 4 is CONNECT_ERROR.
const (
	sioConnect     = '0'
	sioDisconnect  = '1'
	sioEvent       = '2'
	sioAck         = '3'
	sioError       = '4'
	sioBinaryEvent = '5'
	sioBinaryAck   = '6'
)

// Frames the client sends as they are.
var (
	framePing       = []byte{eioPing}
	frameDisconnect = []byte{eioMessage, sioDisconnect}
)

// maxAckIDDigits bounds the ack id of a parsed packet so that it fits an int64.
const maxAckIDDigits = 18

// openPacket is the JSON body of the Engine.IO open packet ("0{...}").
// The durations are in milliseconds; MaxPayload (bytes) is sent by Engine.IO 4
// only.
type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

// parseOpen decodes the body of an Engine.IO open packet (without its type byte).
func parseOpen(b []byte) (openPacket, error) {
	var p openPacket
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("open packet: %w", err)
	}
	if p.SID == "" || p.PingInterval <= 0 || p.PingTimeout <= 0 {
		return p, fmt.Errorf("open packet: missing sid, pingInterval or pingTimeout: %s", b)
	}
	return p, nil
}

// sioPacket is one decoded Socket.IO packet.
type sioPacket struct {
	typ  byte   // one of the sio* constants
	nsp  string // namespace; "" and "/" both mean the root namespace
	id   int64  // ack id, or -1 when the packet carries none
	data []byte // JSON payload, possibly empty; aliases the frame
}

// isRoot reports whether the packet belongs to the root namespace.
func (p sioPacket) isRoot() bool { return p.nsp == "" || p.nsp == "/" }

// parseSIO decodes a Socket.IO packet: the payload of an Engine.IO message
// packet, laid out as TYPE [ATTACHMENTS "-"] [NAMESPACE ","] [ID] [JSON].
func parseSIO(b []byte) (sioPacket, error) {
	p := sioPacket{id: -1}
	if len(b) == 0 || b[0] < sioConnect || b[0] > sioBinaryAck {
		return p, errors.New("socket.io packet: bad type")
	}
	p.typ = b[0]
	b = b[1:]
	if p.typ == sioBinaryEvent || p.typ == sioBinaryAck {
		i := bytes.IndexByte(b, '-')
		if i < 0 {
			return p, errors.New("socket.io packet: binary packet without attachment count")
		}
		b = b[i+1:]
	}
	if len(b) > 0 && b[0] == '/' {
		i := bytes.IndexByte(b, ',')
		if i < 0 {
			p.nsp, b = string(b), nil
		} else {
			p.nsp, b = string(b[:i]), b[i+1:]
		}
	}
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n > maxAckIDDigits {
		return p, errors.New("socket.io packet: ack id too long")
	}
	if n > 0 {
		id, err := strconv.ParseInt(string(b[:n]), 10, 64)
		if err != nil {
			return p, fmt.Errorf("socket.io packet: ack id: %w", err)
		}
		p.id = id
	}
	p.data = b[n:]
	return p, nil
}

// connectFrame builds the Socket.IO 5 CONNECT packet of the root namespace:
// "40", followed by the auth object when auth is not nil.
func connectFrame(auth any) ([]byte, error) {
	f := []byte{eioMessage, sioConnect}
	if auth == nil {
		return f, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(auth); err != nil {
		return nil, fmt.Errorf("client: auth: %w", err)
	}
	data := bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("client: auth must encode to a JSON object, not %.40s", data)
	}
	return append(f, data...), nil
}

// parseConnected returns the sid of a Socket.IO 5 CONNECT reply's data,
// {"sid":"..."}; it is empty when the data has none.
func parseConnected(data []byte) string {
	var v struct {
		SID string `json:"sid"`
	}
	_ = json.Unmarshal(data, &v)
	return v.SID
}

// errorMessage returns the text of an error packet's data: the message field
// of an object (Socket.IO 5: {"message":"..."}), a JSON string as it is
// (Socket.IO 4: "..."), or else the raw data.
func errorMessage(data []byte) string {
	data = bytes.TrimSpace(data)
	var v struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(data, &v) == nil && v.Message != nil {
		return *v.Message
	}
	var s string
	if json.Unmarshal(data, &s) == nil {
		return s
	}
	return string(data)
}

// parseEvent decodes the data of an event packet, ["name", arg1, ...].
func parseEvent(data []byte) (name string, args []json.RawMessage, err error) {
	var all []json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return "", nil, fmt.Errorf("event: %w", err)
	}
	if len(all) == 0 {
		return "", nil, errors.New("event: empty array")
	}
	if err := json.Unmarshal(all[0], &name); err != nil {
		return "", nil, fmt.Errorf("event name: %w", err)
	}
	return name, all[1:], nil
}

// parseAckArg returns the first argument of an ack packet's data [arg1, ...],
// or null when the ack carries none.
func parseAckArg(data []byte) (json.RawMessage, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return json.RawMessage("null"), nil
	}
	var args []json.RawMessage
	if err := json.Unmarshal(data, &args); err != nil {
		return nil, fmt.Errorf("ack: %w", err)
	}
	if len(args) == 0 {
		return json.RawMessage("null"), nil
	}
	return args[0], nil
}

// encodeEventData encodes ["event", arg1, ...]. Arguments are JSON-encoded
// without HTML escaping, as JSON.stringify does; a json.RawMessage argument is
// checked for validity and copied verbatim (an empty one is sent as null).
func encodeEventData(event string, args []any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('[')
	if err := enc.Encode(event); err != nil {
		return nil, err
	}
	b.Truncate(b.Len() - 1) // Encode appends a newline.
	for i, a := range args {
		b.WriteByte(',')
		if raw, ok := a.(json.RawMessage); ok {
			switch {
			case len(raw) == 0:
				b.WriteString("null")
			case !json.Valid(raw):
				return nil, fmt.Errorf("client: argument %d: invalid json.RawMessage", i+1)
			default:
				b.Write(raw)
			}
			continue
		}
		if err := enc.Encode(a); err != nil {
			return nil, fmt.Errorf("client: argument %d: %w", i+1, err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// eventFrame builds the websocket frame of an event: "42" [id] data, where a
// negative id means no acknowledgement is requested.
func eventFrame(id int64, data []byte) []byte {
	f := make([]byte, 0, len(data)+22)
	f = append(f, eioMessage, sioEvent)
	if id >= 0 {
		f = strconv.AppendInt(f, id, 10)
	}
	return append(f, data...)
}

// endpoint turns a base URL (http, https, ws or wss, with an optional path
// prefix) into the Engine.IO websocket URL of the given version (3 or 4),
// with the token as a query parameter. Query parameters already in baseURL
// are kept after the protocol's own.
func endpoint(baseURL, token string, protocol int) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("client: base URL %q: scheme must be http, https, ws or wss", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: no host", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/socket.io/"
	u.RawPath = ""
	u.Fragment, u.RawFragment = "", ""
	q := "EIO=" + strconv.Itoa(protocol) + "&transport=websocket"
	if token != "" {
		q += "&token=" + url.QueryEscape(token)
	}
	if u.RawQuery != "" {
		q += "&" + u.RawQuery
	}
	u.RawQuery = q
	return u, nil
}
