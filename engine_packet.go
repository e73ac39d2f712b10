package main

import (
	"bytes"
	"encoding/json"
)

// A session's packets from its client, in order (the caller holds s.rmu):
// Engine.IO packets, the Socket.IO packets of "/" inside its messages, and
// the connect of "/" in each generation. Packets naming other namespaces go
// on to engine_namespace.go, binary events and their attachments to
// engine_binary.go.

// handlePacket handles one Engine.IO packet from the client. An error ends
// the session: the packet was malformed or not part of the protocol.
func (e *Engine) handlePacket(s *session, p []byte) error {
	if len(p) == 0 {
		return errBadPacket
	}
	s.seen()
	switch p[0] {
	case eioMessage:
		if e.opts.echo {
			s.sendFrame(bytes.Clone(p))
			return nil
		}
		return e.handleMessage(s, p[1:])
	case eioPing:
		if s.proto == 3 { // v3 clients ping; v4 clients only answer
			s.sendFrame(append([]byte{eioPong}, p[1:]...))
		}
	case eioBinary: // an attachment of a binary event
		if e.opts.echo {
			s.sendFrame(bytes.Clone(p))
			return nil
		}
		return e.attach(s, p)
	case eioPong, eioNoop:
	case eioClose:
		e.clientClose(s)
	default:
		return errBadPacket
	}
	return nil
}

// handleMessage handles one Socket.IO packet.
func (e *Engine) handleMessage(s *session, b []byte) error {
	if s.bin != nil { // text where an attachment was due
		return errBadPacket
	}
	p, err := decodeSIO(b)
	if err != nil {
		return err
	}
	if p.isNsp {
		return e.handleNamespace(s, p)
	}
	switch p.typ {
	case sioConnect:
		if s.leftRoot() {
			return errBadPacket // a fresh socket would get fresh limits
		}
		if s.proto == 4 && !s.isConnected() {
			e.call(func() { e.connectV4(s, p.data) })
		}
		return nil
	case sioDisconnect:
		if !e.leaveRoot(s) {
			s.close("client namespace disconnect")
		}
		return nil
	case sioAck: // the server asks for no acknowledgements
		return nil
	case sioError:
		return errBadPacket
	case sioBinaryEvent:
		if !e.opts.rootArgs { // "/" takes one JSON payload per event, as in revision 2
			return errBinaryPacket
		}
		return e.startBinary(s, p)
	}
	if !s.isConnected() {
		return nil // v4: events before CONNECT are not for any namespace
	}
	if e.opts.rootArgs {
		return e.dispatchEvent(s, p, nil)
	}
	// Decoding and handling run off the reader's stack; the reader waits,
	// so p.data (its buffer) stays valid meanwhile.
	e.call(func() {
		var name string
		var payload json.RawMessage
		if name, payload, err = decodeEvent(p.data); err != nil {
			return
		}
		ack := e.host.event(s.sock, name, payload, p.id >= 0)
		if p.id >= 0 {
			s.sendFrame(ackFrame(p.id, ack))
		}
	})
	return err
}

// connectV4 answers a v4 CONNECT: 40{"sid":...} or 44{"message":...}, after
// which a refused session closes once the answer is sent.
func (e *Engine) connectV4(s *session, auth []byte) {
	if len(auth) > 0 && !json.Valid(auth) {
		auth = nil
	}
	if err := e.host.authorize(s.sock, auth); err != nil {
		s.sendLast(append([]byte(`44{"message":`), append(canonicalJSON(err.Error()), '}')...))
		return
	}
	// The namespace's socket id is the session id: the protocol has one
	// socket per session, and only its own client ever sees it.
	s.sendFrame([]byte(`40{"sid":"` + s.id + `"}`))
	s.markConnected()
	e.host.connect(s.sock)
}

// connectV3 connects the default namespace of a new v3 session: Socket.IO 4
// connects it unasked, with "40".
func (e *Engine) connectV3(s *session) bool {
	if err := e.host.authorize(s.sock, nil); err != nil {
		s.close("connect refused")
		return false
	}
	s.sendFrame([]byte("40"))
	s.markConnected()
	e.host.connect(s.sock)
	return true
}
