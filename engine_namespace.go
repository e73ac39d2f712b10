package main

import (
	"encoding/json"
	"strings"
	"time"
)

// Namespaces other than "/" (revision 3 of PROTOCOL.md). A client connects
// to one with a CONNECT naming it ("40/chat," and for v4 its auth object),
// on the same Engine.IO session as "/"; the host decides
// (engineHost.nspAuthorize: errUnknownNamespace for one nobody serves).
// Events and acknowledgements then carry the namespace ("42/chat,..."), and
// a DISCONNECT naming it leaves it. A session is in at most maxNamespaces
// of them at once; one that is in no namespace, "/" included, is closed
// after the connect timeout (engineOptions.connectTimeout), as socket.io
// closes a connection that never connects.
//
// A namespace shares the session's Socket (identity, claims, user, data):
// the host is told of the Socket and the namespace's name.

// maxNamespaces bounds the namespaces other than "/" one session is in at
// once.
const maxNamespaces = 8

// maxNamespaceLen bounds a namespace's name, its leading "/" included.
const maxNamespaceLen = 128

// errUnknownNamespace refuses a CONNECT to a namespace nobody serves.
var errUnknownNamespace = invalid("Invalid namespace")

// nspEvent is one client event as the engine hands it to nspEvent: every
// event of a namespace other than "/" (with rootArgs, of "/" too).
type nspEvent struct {
	nsp  string // "/chat", or "/"
	name string
	args []byte   // the arguments' JSON text, between the name's comma and the closing bracket
	att  [][]byte // binary attachments, in placeholder order
	ack  bool     // the client asked for an acknowledgement
}

// handleNamespace handles a packet naming a namespace other than "/".
// s.rmu is held.
func (e *Engine) handleNamespace(s *session, p sioPacket) error {
	switch p.typ {
	case sioConnect:
		return e.connectNamespace(s, p)
	case sioDisconnect:
		e.leaveNamespace(s, nspName(s.proto, p.nsp), "client namespace disconnect", false)
		return nil
	case sioAck: // the server asks for no acknowledgements
		return nil
	case sioError:
		return errBadPacket
	case sioBinaryEvent:
		return e.startBinary(s, p)
	}
	return e.dispatchEvent(s, p, nil)
}

// nspName returns the namespace a v3 packet names without its query
// ("/chat?token=x" is "/chat"); v4 clients send the auth object instead.
func nspName(proto int, nsp string) string {
	if proto == 3 {
		if i := strings.IndexByte(nsp, '?'); i >= 0 {
			return nsp[:i]
		}
	}
	return nsp
}

// connectNamespace answers a CONNECT to a namespace other than "/":
// 40/name,{"sid":...} (v3: 40/name,) after the host admits it, else
// 44/name,{"message":...} (v3: 44/name,"...").
func (e *Engine) connectNamespace(s *session, p sioPacket) error {
	name := nspName(s.proto, p.nsp)
	if s.inNamespace(name) {
		return nil
	}
	var auth json.RawMessage
	if s.proto == 4 && len(p.data) > 0 {
		if !json.Valid(p.data) {
			return errBadPacket
		}
		auth = json.RawMessage(string(p.data)) // a copy: the reader's buffer is reused
	}
	e.call(func() {
		if s.namespaceCount() >= maxNamespaces {
			s.sendFrame(connectErrorFrame(s.proto, name, "Too many namespaces"))
			return
		}
		if err := e.host.nspAuthorize(s.sock, name, auth); err != nil {
			msg := err.Error()
			if pe, ok := err.(*Error); ok {
				msg = pe.Message
			}
			s.sendFrame(connectErrorFrame(s.proto, name, msg))
			return
		}
		// As for "/", the namespace's socket id is the session id: only
		// its own client ever sees it.
		answer := []byte("40" + name + `,{"sid":"` + s.id + `"}`)
		if s.proto == 3 {
			answer = []byte("40" + name + ",")
		}
		// Sent before the session counts as in the namespace: a session
		// whose answer could not be queued never was (its client's next
		// packets wait for this call).
		if s.sendFrame(answer) && s.joinNamespace(name) {
			e.host.nspConnect(s.sock, name)
		}
	})
	return nil
}

// connectErrorFrame returns a namespace's connect error: v4
// 44/name,{"message":msg}, v3 44/name,"msg".
func connectErrorFrame(proto int, nsp, msg string) []byte {
	b := []byte("44" + nsp + ",")
	if proto == 4 {
		b = append(b, `{"message":`...)
		return append(append(b, canonicalJSON(msg)...), '}')
	}
	return append(b, canonicalJSON(msg)...)
}

// leaveNamespace takes the session out of namespace nsp, tells the host,
// and for a server-side disconnect (byServer) tells the client.
func (e *Engine) leaveNamespace(s *session, nsp, reason string, byServer bool) {
	if !s.leaveNamespaceState(nsp) {
		return
	}
	if byServer {
		s.sendFrame([]byte("41" + nsp + ","))
	}
	e.host.nspDisconnect(s.sock, nsp, reason)
}

// dispatchEvent hands a client event of a namespace other than "/" (with
// rootArgs, of any) to the host, and answers its acknowledgement. Events
// for a namespace the session is not in are dropped, as socket.io does.
func (e *Engine) dispatchEvent(s *session, p sioPacket, att [][]byte) error {
	name := nspName(s.proto, p.nsp)
	if name == "/" && !s.isConnected() || name != "/" && !s.inNamespace(name) {
		return nil
	}
	var err error
	e.call(func() {
		ev := nspEvent{nsp: name, att: att, ack: p.id >= 0}
		if ev.name, ev.args, err = splitEvent(p.data); err != nil {
			return
		}
		body, ackAtt := e.host.nspEvent(s.sock, &ev)
		if p.id >= 0 {
			s.sendFrames(packetFrames(s.proto, sioAck, name, p.id, body, ackAtt))
		}
	})
	return err
}

// inNamespace reports whether the session is in namespace nsp (not "/").
func (s *session) inNamespace(nsp string) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.nsps[nsp]
}

// namespaceCount returns the namespaces other than "/" the session is in.
func (s *session) namespaceCount() int {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return len(s.nsps)
}

// joinNamespace records that the session is in nsp; false when it is gone.
func (s *session) joinNamespace(nsp string) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.gone {
		return false
	}
	if s.nsps == nil {
		s.nsps = make(map[string]bool)
	}
	s.nsps[nsp] = true
	return true
}

// leaveNamespaceState records that the session left nsp and reports
// whether it was in it. A session left in no namespace starts its connect
// timeout again.
func (s *session) leaveNamespaceState(nsp string) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.nsps[nsp] || s.gone {
		return false
	}
	delete(s.nsps, nsp)
	if len(s.nsps) == 0 && !s.connected {
		s.becameBareLocked()
	}
	return true
}

// leaveRoot handles a client's DISCONNECT of "/": the host is told, and
// the session stays for its other namespaces, or, in none, until the
// connect timeout (as socket.io keeps the connection). A later CONNECT to
// "/" ends the session: a fresh socket would get fresh rate limits. It
// reports false when "/" was not connected: the DISCONNECT then ends the
// session.
func (e *Engine) leaveRoot(s *session) bool {
	s.wmu.Lock()
	if !s.connected || s.gone {
		s.wmu.Unlock()
		return false
	}
	s.connected, s.rootLeft = false, true
	if len(s.nsps) == 0 {
		s.becameBareLocked()
	}
	s.wmu.Unlock()
	e.host.disconnect(s.sock, "client namespace disconnect")
	return true
}

// becameBareLocked starts the connect timeout of a session that just left
// its last namespace, waking its timer for the new deadline. s.wmu must be
// held.
func (s *session) becameBareLocked() {
	now := time.Now()
	s.bare = now
	if s.timer != nil {
		s.timer.Reset(s.nextWakeLocked(now))
	}
}

// leftRoot reports whether the client left "/" while in other namespaces.
func (s *session) leftRoot() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.rootLeft
}

// namespacesLocked returns the namespaces the session is in and forgets
// them; finish tells the host of each. s.wmu must be held.
func (s *session) namespacesLocked() []string {
	out := make([]string, 0, len(s.nsps))
	for nsp := range s.nsps {
		out = append(out, nsp)
	}
	s.nsps = nil
	return out
}
