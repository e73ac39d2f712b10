package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rtm/client"
)

// echoNamespaces is a module serving "/echo": a v4 client must connect with
// {"pass":"ok"}; each connection is greeted with "hello" and a binary
// argument; "echo" acknowledges with its arguments; "kind" with the Go type
// of its first. It counts disconnects. extra more namespaces, "/n0"...,
// serve nothing.
type echoNamespaces struct {
	extra int
	gone  atomic.Int32
}

func (*echoNamespaces) Name() string { return "echo-namespaces" }

func (m *echoNamespaces) Register(mc *ModuleContext) error {
	n, err := mc.Namespace("/echo")
	if err != nil {
		return err
	}
	n.Authorize(func(c *NSConn, auth json.RawMessage) error {
		if c.Socket().Protocol() == 4 && string(auth) != `{"pass":"ok"}` {
			return Forbidden("wrong pass")
		}
		return nil
	})
	n.OnConnect(func(c *NSConn) { c.Emit("hello", c.Namespace(), []byte{0, 1, 2}) })
	n.OnDisconnect(func(*NSConn, string) { m.gone.Add(1) })
	n.Handle("echo", func(_ context.Context, _ *NSConn, args []any) ([]any, error) { return args, nil })
	n.Handle("kind", func(_ context.Context, _ *NSConn, args []any) ([]any, error) {
		if len(args) == 0 {
			return nil, InvalidPayload("no argument")
		}
		return []any{fmt.Sprintf("%T", args[0])}, nil
	})
	for i := range m.extra {
		if _, err := mc.Namespace(fmt.Sprintf("/n%d", i)); err != nil {
			return err
		}
	}
	if _, err := mc.Namespace("no comma, please"); err == nil {
		return errors.New("a bad namespace name was taken")
	}
	return nil
}

// sioClient speaks Socket.IO packets over either transport of either
// generation; binary messages come back from recv as "<bin>" and the data.
type sioClient interface {
	send(pk string)
	sendBinary(data []byte)
	recv() string
}

// wsClient is a sioClient over a raw websocket.
type wsClient struct{ *rawWS }

func (c wsClient) sendBinary(data []byte) {
	c.t.Helper()
	if c.proto == 3 {
		data = append([]byte{4}, data...)
	}
	if err := c.c.WriteMessage(websocket.BinaryMessage, data); err != nil {
		c.t.Fatal(err)
	}
}

func (c wsClient) recv() string {
	c.t.Helper()
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, msg, err := c.c.ReadMessage()
		if err != nil {
			c.t.Fatal(err)
		}
		switch {
		case typ == websocket.BinaryMessage && c.proto == 3:
			return "<bin>" + string(msg[1:])
		case typ == websocket.BinaryMessage:
			return "<bin>" + string(msg)
		case string(msg) == "2":
			c.send("3")
			continue
		}
		return string(msg)
	}
}

// pollClient is a sioClient over polling.
type pollClient struct {
	*pollingSession
	got []string
}

func (c *pollClient) send(pk string) { c.post(pk) }

func (c *pollClient) sendBinary(data []byte) {
	prefix := "b"
	if c.proto == 3 {
		prefix = "b4"
	}
	c.post(prefix + base64.StdEncoding.EncodeToString(data))
}

func (c *pollClient) recv() string {
	c.t.Helper()
	for len(c.got) == 0 {
		for _, pk := range c.get() {
			switch {
			case pk == "2" && c.proto == 4:
				c.post("3")
			case pk == "6": // noop
			default:
				c.got = append(c.got, pk)
			}
		}
	}
	pk := c.got[0]
	c.got = c.got[1:]
	if strings.HasPrefix(pk, "b") {
		enc := pk[1:]
		if c.proto == 3 {
			enc = strings.TrimPrefix(enc, "4")
		}
		data, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			c.t.Fatalf("bad binary packet %q", pk)
		}
		return "<bin>" + string(data)
	}
	return pk
}

// eachClient runs f for both generations and both transports, with a
// client connected to "/".
func eachClient(t *testing.T, n *testNode, f func(name string, c sioClient, proto int)) {
	for _, v := range versions {
		f(fmt.Sprintf("EIO=%d websocket", v), wsClient{dialRaw(t, n, v, "", "")}, v)
		f(fmt.Sprintf("EIO=%d polling", v), &pollClient{pollingSession: openPolling(t, n.url, v)}, v)
	}
}

// connectEcho connects c to "/echo" and reads the answer and the greeting.
func connectEcho(t *testing.T, name string, c sioClient, proto int) {
	t.Helper()
	if proto == 4 {
		c.send(`40/echo,{"pass":"ok"}`)
		if pk := c.recv(); !strings.HasPrefix(pk, `40/echo,{"sid":"`) {
			t.Fatalf("%s: got %q; want the connect answer", name, pk)
		}
	} else {
		c.send("40/echo,")
		if pk := c.recv(); pk != "40/echo," {
			t.Fatalf("%s: got %q; want the connect answer", name, pk)
		}
	}
	wantPackets(t, name, c, `451-/echo,["hello","/echo",{"_placeholder":true,"num":0}]`, "<bin>\x00\x01\x02")
}

func wantPackets(t *testing.T, name string, c sioClient, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := c.recv(); got != w {
			t.Fatalf("%s: got %q; want %q", name, got, w)
		}
	}
}

// A module's namespace, on both generations and both transports: connect
// (v4 with auth, refused without the right one), events with several
// arguments and their acks, unknown namespaces and events, "/" alongside,
// and a DISCONNECT of the namespace that leaves "/" connected.
func TestNamespaceEventsAndAcks(t *testing.T) {
	t.Parallel()
	m := &echoNamespaces{}
	n := startNode(t, testOptions(t), m)
	disconnects := int32(0)
	eachClient(t, n, func(name string, c sioClient, proto int) {
		if proto == 4 {
			c.send(`40/echo,{"pass":"no"}`)
			wantPackets(t, name, c, `44/echo,{"message":"wrong pass"}`)
		}
		c.send("40/nowhere,")
		if proto == 4 {
			wantPackets(t, name, c, `44/nowhere,{"message":"Invalid namespace"}`)
		} else {
			wantPackets(t, name, c, `44/nowhere,"Invalid namespace"`)
		}
		connectEcho(t, name, c, proto)
		c.send(`42/echo,7["echo",1,"two",{"x":[true,null]}]`)
		wantPackets(t, name, c, `43/echo,7[1,"two",{"x":[true,null]}]`)
		c.send(`42/echo,8["nope"]`)
		wantPackets(t, name, c, `43/echo,8[{"error":{"code":"invalid_payload","message":"unknown event"},"ok":false}]`)
		c.send(`429["presence:sync"]`) // "/" is as it was
		if pk := c.recv(); !strings.HasPrefix(pk, `439[{"error":{"code":"not_joined"`) {
			t.Fatalf("%s: got %q; want not_joined on /", name, pk)
		}
		c.send("41/echo,")
		c.send(`42/echo,10["echo",1]`) // not in the namespace any more: dropped
		c.send(`4211["presence:sync"]`)
		if pk := c.recv(); !strings.HasPrefix(pk, `4311[`) {
			t.Fatalf("%s: got %q; want the ack of / only", name, pk)
		}
		disconnects++
		waitFor(t, 5*time.Second, "OnDisconnect", func() bool { return m.gone.Load() == disconnects })
	})
}

// Binary arguments reach handlers as []byte and go back as attachments,
// on both generations and both transports; a binary event of "/" ends its
// session, as it did.
func TestNamespaceBinary(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t), &echoNamespaces{})
	eachClient(t, n, func(name string, c sioClient, proto int) {
		connectEcho(t, name, c, proto)
		c.send(`452-/echo,3["echo",{"_placeholder":true,"num":1},"x",[{"_placeholder":true,"num":0}]]`)
		c.sendBinary([]byte{9, 8})
		c.sendBinary([]byte("\xff\x00text"))
		wantPackets(t, name, c, `462-/echo,3[{"_placeholder":true,"num":0},"x",[{"_placeholder":true,"num":1}]]`,
			"<bin>\xff\x00text", "<bin>\x09\x08")
		c.send(`451-/echo,4["kind",{"_placeholder":true,"num":0}]`)
		c.sendBinary(nil)
		wantPackets(t, name, c, `43/echo,4["[]uint8"]`)
	})
	// "/" takes no binary events, as in revision 2: the session ends.
	for _, v := range versions {
		r := dialRaw(t, n, v, "", "")
		r.send(`451-5["presence:sync",{"_placeholder":true,"num":0}]`)
		r.closed(5 * time.Second)
	}
}

// A binary event over the attachment count or whose attachments together
// are over the message limit is refused as an oversized message is:
// websocket close 1009, polling 413; so is an attachment nobody announced
// (malformed) and text where an attachment was due.
func TestBinaryLimits(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.MaxMessageBytes = 1000
	n := startNode(t, opts, &echoNamespaces{})
	tooMany := fmt.Sprintf(`45%d-/echo,["echo"]`, maxAttachments+1)
	for _, v := range versions {
		for name, tt := range map[string]struct {
			pk  string
			att [][]byte
		}{
			"count": {tooMany, nil},
			"size":  {`452-/echo,["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, [][]byte{make([]byte, 600), make([]byte, 600)}},
		} {
			r := wsClient{dialRaw(t, n, v, "", "")}
			connectEcho(t, name, r, v)
			r.send(tt.pk)
			for _, a := range tt.att {
				r.sendBinary(a)
			}
			_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := r.c.ReadMessage(); err != nil {
					if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
						t.Fatalf("EIO=%d websocket %s: got %v; want close 1009", v, name, err)
					}
					break
				}
			}

			p := &pollClient{pollingSession: openPolling(t, n.url, v)}
			connectEcho(t, name, p, v)
			body := []string{tt.pk}
			for _, a := range tt.att {
				prefix := "b"
				if v == 3 {
					prefix = "b4"
				}
				body = append(body, prefix+base64.StdEncoding.EncodeToString(a))
			}
			if status, _ := p.request("POST", p.encode(body...)); status != http.StatusRequestEntityTooLarge {
				t.Errorf("EIO=%d polling %s: HTTP %d; want 413", v, name, status)
			}
			if status, _ := p.request("GET", ""); status != http.StatusBadRequest {
				t.Errorf("EIO=%d polling %s: the session lives on (HTTP %d)", v, name, status)
			}
		}
		for _, bad := range [][]string{{"b4AAAA"}, {`451-/echo,["echo",{"_placeholder":true,"num":0}]`, `42/echo,["echo"]`}} {
			r := wsClient{dialRaw(t, n, v, "", "")}
			connectEcho(t, "malformed", r, v)
			for _, pk := range bad {
				r.send(pk)
			}
			r.closed(5 * time.Second)
		}
	}
	waitFor(t, 5*time.Second, "every session gone", func() bool { return n.srv.eng.Len() == 0 })
}

// A session is in at most maxNamespaces namespaces besides "/".
func TestNamespacesPerSessionBounded(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t), &echoNamespaces{extra: maxNamespaces + 1})
	for _, v := range versions {
		r := wsClient{dialRaw(t, n, v, "", "")}
		for i := range maxNamespaces {
			r.send(fmt.Sprintf("40/n%d,", i))
			if pk := r.recv(); !strings.HasPrefix(pk, fmt.Sprintf("40/n%d,", i)) {
				t.Fatalf("EIO=%d: got %q; want the connect answer", v, pk)
			}
		}
		r.send(fmt.Sprintf("40/n%d,", maxNamespaces))
		if pk := r.recv(); !strings.HasPrefix(pk, fmt.Sprintf("44/n%d,", maxNamespaces)) || !strings.Contains(pk, "Too many namespaces") {
			t.Fatalf("EIO=%d: got %q; want a connect error", v, pk)
		}
		r.send("41/n0,") // one left: room for another
		r.send(fmt.Sprintf("40/n%d,", maxNamespaces))
		if pk := r.recv(); !strings.HasPrefix(pk, fmt.Sprintf("40/n%d,", maxNamespaces)) {
			t.Fatalf("EIO=%d: got %q; want the connect answer", v, pk)
		}
	}
}

// A session in no namespace is closed after the connect timeout: a v4
// client that never connects, and one that left its last namespace ("/"
// and "/echo"); while in one, it stays. A CONNECT to "/" after leaving it
// ends the session.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.ConnectTimeout = 400 * time.Millisecond
	n := startNode(t, opts, &echoNamespaces{})

	start := time.Now()
	bare := openRaw(t, n, 4, "")
	if took := bare.closed(5 * time.Second).Sub(start); took < opts.ConnectTimeout {
		t.Fatalf("closed after %v; want no earlier than the connect timeout", took)
	}

	for _, v := range versions {
		r := wsClient{dialRaw(t, n, v, "", "")}
		connectEcho(t, "left", r, v)
		r.send("41") // "/" left: the session stays for "/echo"
		r.send(`42/echo,1["echo","still"]`)
		wantPackets(t, "left", r, `43/echo,1["still"]`)
		r.send("41/echo,")
		left := time.Now()
		if took := r.closed(5 * time.Second).Sub(left); took < opts.ConnectTimeout-50*time.Millisecond {
			t.Fatalf("EIO=%d: closed %v after leaving its last namespace; want the connect timeout", v, took)
		}

		again := wsClient{dialRaw(t, n, v, "", "")}
		connectEcho(t, "again", again, v)
		again.send("41")
		again.send("40")
		again.closed(5 * time.Second)
	}
}

// socket.io-client 2.x over XHR2 posts a binary event in a binary payload
// (Content-Type application/octet-stream); the engine takes it as it takes
// the base64 form.
func TestPollingV3BinaryPayload(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t), &echoNamespaces{})
	c := &pollClient{pollingSession: openPolling(t, n.url, 3)}
	connectEcho(t, "v3 binary payload", c, 3)
	text := `451-/echo,1["echo",{"_placeholder":true,"num":0}]`
	var body []byte
	body = append(body, 0)
	for _, d := range strconv.Itoa(len(text)) {
		body = append(body, byte(d-'0'))
	}
	body = append(append(body, 0xff), text...)
	body = append(body, 1, 4, 0xff, 4, 0xfe, 0, 7) // binary: type 4, then 3 bytes
	req, err := http.NewRequest("POST", c.url+"&sid="+c.sid, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	wantPackets(t, "v3 binary payload", c, `461-/echo,1[{"_placeholder":true,"num":0}]`, "<bin>\xfe\x00\x07")
}

// The Go client in a namespace (client.Conn.Of), both generations: connect
// (v4 with auth; a wrong one and an unknown namespace refused), the
// greeting's binary argument, calls with binary arguments, nested ones
// too, and their binary acks, then Close with "/" still connected.
func TestClientNamespaces(t *testing.T) {
	t.Parallel()
	n := startNode(t, testOptions(t), &echoNamespaces{})
	for _, v := range versions {
		c, err := client.Dial(tctx(t), n.url, client.Options{Protocol: v})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		var auth any
		if v == 4 {
			if _, err := c.Of(tctx(t), "/echo", map[string]string{"pass": "no"}); !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), "wrong pass") {
				t.Fatalf("EIO=%d: a wrong pass: got %v; want refused", v, err)
			}
			auth = map[string]string{"pass": "ok"}
		}
		if _, err := c.Of(tctx(t), "/nowhere", nil); !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), "Invalid namespace") {
			t.Fatalf("EIO=%d: an unknown namespace: got %v; want refused", v, err)
		}
		ns, err := c.Of(tctx(t), "/echo", auth)
		if err != nil {
			t.Fatalf("EIO=%d: %v", v, err)
		}
		select {
		case e := <-c.Events():
			args, err := e.Decode()
			if err != nil || e.Namespace != "/echo" || e.Name != "hello" || len(args) != 2 || !bytes.Equal(args[1].([]byte), []byte{0, 1, 2}) {
				t.Fatalf("EIO=%d: got %+v (%v, %v); want hello with bytes", v, e, args, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("EIO=%d: no greeting", v)
		}
		got, err := ns.Call(tctx(t), "echo", 1, []byte{9, 8}, map[string]any{"n": []any{[]byte("é")}})
		if err != nil || len(got) != 3 || got[0] != float64(1) || !bytes.Equal(got[1].([]byte), []byte{9, 8}) ||
			!bytes.Equal(got[2].(map[string]any)["n"].([]any)[0].([]byte), []byte("é")) {
			t.Fatalf("EIO=%d: echo got %v, %v", v, got, err)
		}
		if got, err := ns.Call(tctx(t), "kind", []byte{}); err != nil || len(got) != 1 || got[0] != "[]uint8" {
			t.Fatalf("EIO=%d: kind got %v, %v", v, got, err)
		}
		if err := ns.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sync(tctx(t)); !strings.Contains(fmt.Sprint(err), "not_joined") {
			t.Fatalf("EIO=%d: \"/\" after leaving /echo: got %v; want not_joined", v, err)
		}
	}
}
