package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// fakeApp stands in for the rtm server: each protocol event answers a reply
// set by the test and records the payload it received.
type fakeApp struct {
	mu       sync.Mutex // guards the following fields
	replies  map[string]string
	payloads map[string]string
}

// handlers returns the protocol's handlers for a testServer, plus "emit",
// which sends the client the event named by its first argument with its
// second as argument.
func (a *fakeApp) handlers() map[string]handler {
	hs := map[string]handler{}
	for _, ev := range []string{eventJoin, eventHeartbeat, eventLeave, eventSync, EventChat} {
		hs[ev] = func(_ *testSocket, args []json.RawMessage) (json.RawMessage, bool) {
			a.mu.Lock()
			defer a.mu.Unlock()
			if len(args) > 0 {
				a.payloads[ev] = string(args[0])
			}
			return json.RawMessage(a.replies[ev]), true
		}
	}
	hs["emit"] = func(s *testSocket, args []json.RawMessage) (json.RawMessage, bool) {
		var name string
		if len(args) != 2 || json.Unmarshal(args[0], &name) != nil {
			return json.RawMessage(`"bad emit"`), true
		}
		s.emit(name, args[1])
		return json.RawMessage(`"ok"`), true
	}
	return hs
}

// reply sets the acknowledgement of event.
func (a *fakeApp) reply(event, ack string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.replies[event] = ack
}

// payload returns the last payload received for event.
func (a *fakeApp) payload(event string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.payloads[event]
}

func TestPresenceHelpers(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		app := &fakeApp{replies: map[string]string{}, payloads: map[string]string{}}
		ts := startServer(t, serverConfig{handlers: app.handlers()})
		c := dial(t, ts.url, Options{Protocol: proto})
		ctx := context.Background()
		epoch := int64(4)

		for name, tt := range map[string]struct {
			event, reply, wantPayload string
			do                        func() (any, error)
			want                      any
		}{
			"join": {
				eventJoin,
				`{"ok":true,"self":{"connId":"c1","epoch":1},"snapshot":{"roomId":"r1","seq":3,"members":["ü"],` +
					`"connections":[{"connId":"c1","userId":"ü","state":{"city":"Zürich"},"epoch":1,"lastSeenMs":7}]}}`,
				`{"roomId":"r1","userId":"ü","state":{"city":"Zürich"}}`,
				func() (any, error) {
					return c.Join(ctx, JoinRequest{RoomID: "r1", UserID: "ü", State: map[string]any{"city": "Zürich"}})
				},
				&JoinAck{Self: Self{"c1", 1}, Snapshot: Snapshot{"r1", 3, []string{"ü"},
					[]Connection{{"c1", "ü", json.RawMessage(`{"city":"Zürich"}`), 1, 7}}, nil, nil, false}},
			},
			"join resume": {
				eventJoin,
				`{"ok":true,"self":{"connId":"c1","epoch":5},"snapshot":{"roomId":"r1","seq":9,"members":[],"connections":[]}}`,
				`{"roomId":"r1","userId":"u","resume":{"connId":"c1","epoch":4}}`,
				func() (any, error) {
					return c.Join(ctx, JoinRequest{RoomID: "r1", UserID: "u", Resume: &Self{"c1", 4}})
				},
				&JoinAck{Self: Self{"c1", 5}, Snapshot: Snapshot{"r1", 9, []string{}, []Connection{}, nil, nil, false}},
			},
			"heartbeat": {
				eventHeartbeat, `{"ok":true,"epoch":5,"changed":true}`, `{"epoch":4,"patchState":{"typing":null}}`,
				func() (any, error) {
					return c.Heartbeat(ctx, HeartbeatRequest{Epoch: &epoch, PatchState: map[string]any{"typing": nil}})
				},
				&HeartbeatAck{5, true},
			},
			"empty heartbeat": {
				eventHeartbeat, `{"ok":true,"epoch":4,"changed":false}`, `{}`,
				func() (any, error) { return c.Heartbeat(ctx, HeartbeatRequest{}) },
				&HeartbeatAck{4, false},
			},
			"leave": {
				eventLeave, `{"ok":true,"removed":true}`, `{}`,
				func() (any, error) { return c.Leave(ctx) },
				true,
			},
			"sync": {
				eventSync, `{"ok":true,"snapshot":{"roomId":"r1","seq":2,"members":["u"],"connections":[]}}`, `{}`,
				func() (any, error) { return c.Sync(ctx) },
				&Snapshot{"r1", 2, []string{"u"}, []Connection{}, nil, nil, false},
			},
			"chat": {
				EventChat, `{"ok":true,"id":"m1","ts":1700000000000}`, `{"text":"héllo 中文 👍 <b>"}`,
				func() (any, error) {
					id, ts, err := c.Chat(ctx, "héllo 中文 👍 <b>")
					return fmt.Sprintf("%s@%d", id, ts), err
				},
				"m1@1700000000000",
			},
		} {
			t.Run(name, func(t *testing.T) {
				app.reply(tt.event, tt.reply)
				got, err := tt.do()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %+v; want %+v", got, tt.want)
				}
				if p := app.payload(tt.event); p != tt.wantPayload {
					t.Errorf("server received %s; want %s", p, tt.wantPayload)
				}
			})
		}
	})
}

func TestPresenceHelpersErrors(t *testing.T) {
	app := &fakeApp{replies: map[string]string{}, payloads: map[string]string{}}
	ts := startServer(t, serverConfig{handlers: app.handlers()})
	c := dial(t, ts.url, Options{})
	ctx := context.Background()
	calls := map[string]func() error{
		eventJoin: func() error { _, err := c.Join(ctx, JoinRequest{RoomID: "r", UserID: "u"}); return err },
		eventHeartbeat: func() error {
			_, err := c.Heartbeat(ctx, HeartbeatRequest{})
			return err
		},
		eventLeave: func() error { _, err := c.Leave(ctx); return err },
		eventSync:  func() error { _, err := c.Sync(ctx); return err },
		EventChat:  func() error { _, _, err := c.Chat(ctx, "hi"); return err },
	}
	for event, do := range calls {
		t.Run(event, func(t *testing.T) {
			app.reply(event, `{"ok":false,"error":{"code":"not_joined","message":"join a room first"}}`)
			err := do()
			var ae *AckError
			if !errors.As(err, &ae) || ae.Code != "not_joined" || err.Error() != "not_joined: join a room first" {
				t.Errorf("got %v; want *AckError not_joined", err)
			}
			app.reply(event, `"not an object"`)
			if err := do(); err == nil || errors.As(err, &ae) {
				t.Errorf("malformed ack: got %v; want a plain error", err)
			}
		})
	}
}

func TestDecodeAck(t *testing.T) {
	type fields struct {
		Epoch int64 `json:"epoch"`
	}
	for name, tt := range map[string]struct {
		raw       string
		wantCode  string // for *AckError
		wantPlain bool   // for a malformed ack
		want      fields
	}{
		"ok":                  {raw: `{"ok":true,"epoch":3}`, want: fields{3}},
		"ok false":            {raw: `{"ok":false,"error":{"code":"stale_epoch","message":"m"}}`, wantCode: "stale_epoch"},
		"ok false, no error":  {raw: `{"ok":false}`, wantPlain: true},
		"ok false, no code":   {raw: `{"ok":false,"error":{"message":"m"}}`, wantPlain: true},
		"no ok":               {raw: `{"epoch":3}`, wantPlain: true},
		"null":                {raw: `null`, wantPlain: true},
		"not json":            {raw: `{`, wantPlain: true},
		"array":               {raw: `[{"ok":true}]`, wantPlain: true},
		"ok not a boolean":    {raw: `{"ok":"yes"}`, wantPlain: true},
		"fields of bad types": {raw: `{"ok":true,"epoch":"3"}`, wantPlain: true},
	} {
		t.Run(name, func(t *testing.T) {
			var got fields
			err := decodeAck(json.RawMessage(tt.raw), &got)
			var ae *AckError
			switch {
			case tt.wantCode != "":
				if !errors.As(err, &ae) || ae.Code != tt.wantCode {
					t.Errorf("err = %v; want *AckError %s", err, tt.wantCode)
				}
			case tt.wantPlain:
				if err == nil || errors.As(err, &ae) {
					t.Errorf("err = %v; want a plain error", err)
				}
			case err != nil || got != tt.want:
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseEvents(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		app := &fakeApp{replies: map[string]string{}, payloads: map[string]string{}}
		ts := startServer(t, serverConfig{handlers: app.handlers()})
		c := dial(t, ts.url, Options{Protocol: proto})
		presence := `{"type":"leave","roomId":"r1","seq":12,"userId":"ü","connId":"c9","ts":1700000000001,` +
			`"reason":"disconnect","userLeft":true,"count":{"connections":3,"members":2}}`
		chat := `{"id":"m7","roomId":"r1","userId":"ü","connId":"c9","text":"中文 👍","ts":1700000000002}`
		call(t, c, "emit", EventPresence, json.RawMessage(presence))
		call(t, c, "emit", EventChat, json.RawMessage(chat))

		pe, err := ParsePresenceEvent(<-c.Events())
		if err != nil {
			t.Fatal(err)
		}
		wantPE := PresenceEvent{Type: "leave", RoomID: "r1", Seq: 12, UserID: "ü", ConnID: "c9", TS: 1700000000001,
			Reason: "disconnect", UserLeft: true, Count: Count{3, 2}}
		if !reflect.DeepEqual(*pe, wantPE) {
			t.Errorf("presence event %+v; want %+v", *pe, wantPE)
		}
		cm, err := ParseChatMessage(<-c.Events())
		if err != nil {
			t.Fatal(err)
		}
		if want := (ChatMessage{"m7", "r1", "ü", "c9", "中文 👍", 1700000000002, 0, 0}); *cm != want {
			t.Errorf("chat message %+v; want %+v", *cm, want)
		}

		for name, e := range map[string]Event{
			"wrong name":    {Name: EventChat, Args: []json.RawMessage{json.RawMessage(presence)}},
			"no argument":   {Name: EventPresence},
			"not an object": {Name: EventPresence, Args: []json.RawMessage{json.RawMessage(`[1]`)}},
		} {
			if _, err := ParsePresenceEvent(e); err == nil {
				t.Errorf("%s: ParsePresenceEvent succeeded", name)
			}
		}
		if _, err := ParseChatMessage(Event{Name: EventPresence, Args: []json.RawMessage{json.RawMessage(chat)}}); err == nil {
			t.Error("ParseChatMessage accepted a presence:event")
		}
	})
}
