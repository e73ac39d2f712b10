package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Namespace is the connection's socket in a namespace other than "/" (see
// Conn.Of): events, calls and their acknowledgements within it, with any
// number of arguments, binary ones ([]byte) included. Its events arrive
// with the connection's (Options.OnEvent or Events), Event.Namespace set;
// those of namespaces not connected through Of, and binary events of the
// root namespace, are ignored.
// Its methods are safe for concurrent use.
type Namespace struct {
	c    *Conn
	name string
	sid  string
}

// nsReply is a namespace call's acknowledgement: the JSON array's elements
// and the attachments.
type nsReply struct {
	data []byte
	att  [][]byte
}

// nsResult is the server's answer to a namespace CONNECT.
type nsResult struct {
	sid string
	err error
}

// pendingBinary is a binary packet from the server waiting for its
// attachments; only the read loop touches it.
type pendingBinary struct {
	p   sioPacket // data copied
	n   int       // attachments announced
	att [][]byte
}

// maxAttachments bounds the attachments of one packet from the server.
const maxAttachments = 64

// Of connects the connection to namespace name ("/chat") and returns once
// the server has accepted it. auth is the CONNECT's auth object (protocol 4
// only; nil: none). A refusal is a *RefusedError with the server's message
// ("Invalid namespace" for one it does not serve).
func (c *Conn) Of(ctx context.Context, name string, auth any) (*Namespace, error) {
	if len(name) < 2 || name[0] != '/' || strings.ContainsAny(name, ",?") {
		return nil, fmt.Errorf("client: namespace %q: want \"/name\"", name)
	}
	if auth != nil && c.protocol != 4 {
		return nil, errors.New("client: a namespace's auth needs protocol 4")
	}
	frame := []byte{eioMessage, sioConnect}
	frame = append(append(frame, name...), ',')
	if auth != nil {
		f, err := connectFrame(auth)
		if err != nil {
			return nil, err
		}
		frame = append(frame, f[2:]...)
	}
	ch := make(chan nsResult, 1)
	c.mu.Lock()
	if c.ended || c.closing {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.connecting == nil {
		c.connecting = make(map[string]chan nsResult)
	}
	if c.connecting[name] != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: namespace %s: already connecting", name)
	}
	c.connecting[name] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		if c.connecting[name] == ch {
			delete(c.connecting, name)
		}
		c.mu.Unlock()
	}
	if err := c.write(ctx, frame); err != nil {
		forget()
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		if r.err != nil {
			return nil, r.err
		}
		return &Namespace{c: c, name: name, sid: r.sid}, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// Name returns the namespace's name.
func (n *Namespace) Name() string { return n.name }

// ID returns the socket's id in the namespace (protocol 4; "" in protocol 3).
func (n *Namespace) ID() string { return n.sid }

// Emit sends an event within the namespace without asking for an
// acknowledgement. []byte arguments, at the top or within []any and
// map[string]any values, go as binary attachments.
func (n *Namespace) Emit(event string, args ...any) error {
	frames, err := n.frames(-1, event, args)
	if err != nil {
		return err
	}
	return n.c.writeFrames(context.Background(), frames)
}

// Call sends an event within the namespace with an ack id and waits for the
// acknowledgement, returning its arguments as encoding/json decodes them
// into any, each attachment as a []byte. It returns ctx.Err() when ctx
// ends first and ErrClosed when the connection ends first.
func (n *Namespace) Call(ctx context.Context, event string, args ...any) ([]any, error) {
	c := n.c
	ch := make(chan nsReply, 1)
	c.mu.Lock()
	if c.ended || c.closing {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	id := c.nextID
	c.nextID++
	if c.nsPending == nil {
		c.nsPending = make(map[int64]chan nsReply)
	}
	c.nsPending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.nsPending, id)
		c.mu.Unlock()
	}
	frames, err := n.frames(id, event, args)
	if err == nil {
		err = c.writeFrames(ctx, frames)
	}
	if err != nil {
		forget()
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		return DecodeArgs(r.data, r.att)
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// Close leaves the namespace (a DISCONNECT naming it); the connection stays.
// Its events are no longer delivered.
func (n *Namespace) Close() error {
	n.c.leaveNamespace(n.name)
	return n.c.write(context.Background(), []byte("41"+n.name+","))
}

// frame is one websocket data frame to write.
type frame struct {
	binary bool
	data   []byte
}

// frames builds an event's frames: the packet, binary with placeholders
// when an argument holds []byte, and its attachments.
func (n *Namespace) frames(id int64, event string, args []any) ([]frame, error) {
	var att [][]byte
	repl := make([]any, len(args))
	for i, a := range args {
		repl[i] = extractBinary(a, &att)
	}
	data, err := encodeEventData(event, repl)
	if err != nil {
		return nil, err
	}
	b := []byte{eioMessage, sioEvent}
	if len(att) > 0 {
		b[1] = sioBinaryEvent
		b = append(strconv.AppendInt(b, int64(len(att)), 10), '-')
	}
	b = append(append(b, n.name...), ',')
	if id >= 0 {
		b = strconv.AppendInt(b, id, 10)
	}
	out := []frame{{data: append(b, data...)}}
	for _, a := range att {
		if n.c.protocol == 3 {
			a = append([]byte{4}, a...) // Engine.IO 3: the message type first
		}
		out = append(out, frame{binary: true, data: a})
	}
	return out, nil
}

// placeholder stands for an attachment in a binary packet's JSON.
type placeholder struct {
	Placeholder bool `json:"_placeholder"`
	Num         int  `json:"num"`
}

// extractBinary returns v with its []byte values replaced by placeholders,
// appended to att.
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

// DecodeArgs decodes a JSON array (an event's arguments after its name, or
// an acknowledgement's) as encoding/json decodes into any, each placeholder
// {"_placeholder":true,"num":n} replaced by attachment n as a []byte.
func DecodeArgs(array []byte, att [][]byte) ([]any, error) {
	if len(bytes.TrimSpace(array)) == 0 {
		return nil, nil
	}
	var args []any
	if err := json.Unmarshal(array, &args); err != nil {
		return nil, fmt.Errorf("client: arguments: %w", err)
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

// Decode returns the event's arguments with its attachments in place (see
// DecodeArgs).
func (e Event) Decode() ([]any, error) {
	parts := make([][]byte, len(e.Args))
	for i, a := range e.Args {
		parts[i] = a
	}
	return DecodeArgs(append(append([]byte{'['}, bytes.Join(parts, []byte{','})...), ']'), e.Attachments)
}

func fillPlaceholders(v any, att [][]byte) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if ph, _ := x["_placeholder"].(bool); ph && len(x) == 2 {
			num, ok := x["num"].(float64)
			if !ok || num < 0 || num >= float64(len(att)) || num != math.Trunc(num) {
				return nil, errors.New("client: a placeholder names no attachment")
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

// writeFrames writes a packet and its attachments in one turn, so that no
// other frame comes between them.
func (c *Conn) writeFrames(ctx context.Context, frames []frame) error {
	if len(frames) == 1 {
		return c.write(ctx, frames[0].data)
	}
	select {
	case c.wsem <- struct{}{}:
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wsem }()
	c.mu.Lock()
	stop := c.ended || c.closing
	c.mu.Unlock()
	if stop {
		return ErrClosed
	}
	for _, f := range frames {
		if !f.binary {
			if err := c.writeLocked(f.data); err != nil {
				return err
			}
			continue
		}
		if err := c.ws.WriteMessage(websocket.BinaryMessage, f.data); err != nil {
			err = fmt.Errorf("%w: write: %v", ErrClosed, err)
			c.finish(err)
			return err
		}
	}
	return nil
}

// handleNamespacePacket handles a packet of a namespace other than "/", or
// a binary one of any, whose attachments (if any) have all arrived.
func (c *Conn) handleNamespacePacket(p sioPacket, att [][]byte) error {
	switch p.typ {
	case sioConnect, sioError:
		c.mu.Lock()
		ch := c.connecting[p.nsp]
		delete(c.connecting, p.nsp)
		c.mu.Unlock()
		if ch == nil {
			return nil
		}
		if p.typ == sioError {
			ch <- nsResult{err: &RefusedError{Message: errorMessage(p.data)}}
			return nil
		}
		c.mu.Lock()
		if c.joined == nil {
			c.joined = make(map[string]bool)
		}
		c.joined[p.nsp] = true
		c.mu.Unlock()
		ch <- nsResult{sid: parseConnected(p.data)}
	case sioEvent, sioBinaryEvent:
		if !c.inNamespace(p.nsp) {
			return nil // not connected through Of (root binary events too): ignored
		}
		name, args, err := parseEvent(p.data)
		if err == nil {
			for i := range args {
				args[i] = bytes.Clone(args[i])
			}
			c.dispatch(Event{Namespace: p.nsp, Name: name, Args: args, Attachments: att, Received: time.Now()})
		}
	case sioAck, sioBinaryAck:
		c.mu.Lock()
		ch := c.nsPending[p.id]
		delete(c.nsPending, p.id)
		c.mu.Unlock()
		if ch != nil {
			ch <- nsReply{data: bytes.Clone(p.data), att: att}
		}
	case sioDisconnect:
		if c.leaveNamespace(p.nsp) {
			c.dispatch(Event{Namespace: p.nsp, Name: "disconnect", Received: time.Now()})
		}
	}
	return nil
}

// inNamespace reports whether Of connected the connection to nsp.
func (c *Conn) inNamespace(nsp string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined[nsp]
}

// leaveNamespace forgets namespace nsp and reports whether it was connected.
func (c *Conn) leaveNamespace(nsp string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.joined[nsp]
	delete(c.joined, nsp)
	return was
}

// startBinary takes a binary packet from the server: it is handled once
// its attachments have come.
func (c *Conn) startBinary(b []byte, p sioPacket) error {
	dash := bytes.IndexByte(b, '-')
	n, err := strconv.Atoi(string(b[1:max(dash, 1)]))
	if err != nil || n < 0 || n > maxAttachments {
		return fmt.Errorf("%w: binary packet with a bad attachment count", ErrClosed)
	}
	if n == 0 {
		return c.handleNamespacePacket(p, nil)
	}
	p.data = bytes.Clone(p.data)
	c.bin = &pendingBinary{p: p, n: n}
	return nil
}

// handleBinary takes one binary frame: the next attachment of the pending
// binary packet.
func (c *Conn) handleBinary(msg []byte) error {
	pb := c.bin
	if pb == nil {
		return nil // nothing announced it: ignored, as socket.io-client does
	}
	if c.protocol == 3 {
		if len(msg) == 0 || msg[0] != 4 {
			return fmt.Errorf("%w: binary frame without the message type", ErrClosed)
		}
		msg = msg[1:]
	}
	pb.att = append(pb.att, bytes.Clone(msg))
	if len(pb.att) < pb.n {
		return nil
	}
	c.bin = nil
	return c.handleNamespacePacket(pb.p, pb.att)
}
