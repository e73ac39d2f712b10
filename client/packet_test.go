package client

import (
	"encoding/json"
	"testing"
)

func TestParseSIO(t *testing.T) {
	for in, want := range map[string]sioPacket{
		`0`:                        {typ: sioConnect, id: -1},
		`2["a",1]`:                 {typ: sioEvent, id: -1, data: []byte(`["a",1]`)},
		`212["a"]`:                 {typ: sioEvent, id: 12, data: []byte(`["a"]`)},
		`30[]`:                     {typ: sioAck, id: 0, data: []byte(`[]`)},
		"3\n":                      {typ: sioAck, id: -1, data: []byte("\n")},
		`2/chat,7["a"]`:            {typ: sioEvent, nsp: "/chat", id: 7, data: []byte(`["a"]`)},
		`1/chat`:                   {typ: sioDisconnect, nsp: "/chat", id: -1},
		`4"no"`:                    {typ: sioError, id: -1, data: []byte(`"no"`)},
		`51-3["b",{"num":0}]`:      {typ: sioBinaryEvent, id: 3, data: []byte(`["b",{"num":0}]`)},
		`61-/x,4[{"num":0}]`:       {typ: sioBinaryAck, nsp: "/x", id: 4, data: []byte(`[{"num":0}]`)},
		`2999999999999999999["a"]`: {typ: sioEvent, id: 999999999999999999, data: []byte(`["a"]`)},
	} {
		got, err := parseSIO([]byte(in))
		if err != nil {
			t.Errorf("parseSIO(%q): %v", in, err)
			continue
		}
		if got.typ != want.typ || got.nsp != want.nsp || got.id != want.id || string(got.data) != string(want.data) {
			t.Errorf("parseSIO(%q) = %c %q %d %q; want %c %q %d %q", in,
				got.typ, got.nsp, got.id, got.data, want.typ, want.nsp, want.id, want.data)
		}
	}
	for _, in := range []string{``, `7`, `x`, `5["no dash"]`, `21234567890123456789["a"]`} {
		if _, err := parseSIO([]byte(in)); err == nil {
			t.Errorf("parseSIO(%q) succeeded", in)
		}
	}
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:1":        "ws://h:1/socket.io/?EIO=3&transport=websocket&token=t%2Bk+n",
		"https://h/":        "wss://h/socket.io/?EIO=3&transport=websocket&token=t%2Bk+n",
		"ws://h/prefix":     "ws://h/prefix/socket.io/?EIO=3&transport=websocket&token=t%2Bk+n",
		"wss://h/p/?x=1#f":  "wss://h/p/socket.io/?EIO=3&transport=websocket&token=t%2Bk+n&x=1",
		"http://[::1]:8080": "ws://[::1]:8080/socket.io/?EIO=3&transport=websocket&token=t%2Bk+n",
	} {
		u, err := endpoint(in, "t+k n", 3)
		if err != nil || u.String() != want {
			t.Errorf("endpoint(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	if u, _ := endpoint("http://h", "", 3); u.RawQuery != "EIO=3&transport=websocket" {
		t.Errorf("query without token = %q", u.RawQuery)
	}
	if u, _ := endpoint("http://h", "", 4); u.RawQuery != "EIO=4&transport=websocket" {
		t.Errorf("protocol 4 query = %q", u.RawQuery)
	}
	for _, in := range []string{"ftp://h", "h:80", "http://", "://"} {
		if _, err := endpoint(in, "", 4); err == nil {
			t.Errorf("endpoint(%q) succeeded", in)
		}
	}
}

func TestEncodeEventData(t *testing.T) {
	got, err := encodeEventData("ev", []any{1, "<é>", nil, map[string]int{"b": 2, "a": 1}})
	if want := `["ev",1,"<é>",null,{"a":1,"b":2}]`; err != nil || string(got) != want {
		t.Errorf("got %s, %v; want %s", got, err, want)
	}
	if _, err := encodeEventData("ev", []any{make(chan int)}); err == nil {
		t.Error("encoding a channel succeeded")
	}
	if f := string(eventFrame(-1, []byte(`["a"]`))); f != `42["a"]` {
		t.Errorf("frame without ack = %s", f)
	}
	if f := string(eventFrame(15, []byte(`["a"]`))); f != `4215["a"]` {
		t.Errorf("frame with ack = %s", f)
	}
}

func TestConnectPackets(t *testing.T) {
	for name, tt := range map[string]struct {
		auth    any
		want    string
		wantErr bool
	}{
		"none":      {nil, "40", false},
		"map":       {map[string]string{"token": "a<b"}, `40{"token":"a<b"}`, false},
		"raw":       {json.RawMessage(`{"token":"t"}`), `40{"token":"t"}`, false},
		"string":    {"t", "", true},
		"null":      {json.RawMessage(`null`), "", true},
		"unencoded": {make(chan int), "", true},
	} {
		got, err := connectFrame(tt.auth)
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("%s: connectFrame = %q, %v; want %q, error %v", name, got, err, tt.want, tt.wantErr)
		}
	}
	for data, want := range map[string]string{
		`{"sid":"abc"}`: "abc", `{}`: "", ``: "", `"x"`: "",
	} {
		if got := parseConnected([]byte(data)); got != want {
			t.Errorf("parseConnected(%s) = %q; want %q", data, got, want)
		}
	}
	for data, want := range map[string]string{
		`{"message":"unauthorized"}`:         "unauthorized",
		`{"message":"no","data":{"code":1}}`: "no",
		` "Not authorized" `:                 "Not authorized",
		`{"code":7}`:                         `{"code":7}`,
		`oops`:                               "oops",
	} {
		if got := errorMessage([]byte(data)); got != want {
			t.Errorf("errorMessage(%s) = %q; want %q", data, got, want)
		}
	}
}
