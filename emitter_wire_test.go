package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/gomodule/redigo/redis"

	"rtm/emitter"
)

// recordingConn is a redis.Conn that records what is published on it.
type recordingConn struct {
	redis.Conn
	published *[]string
}

func (c recordingConn) Do(cmd string, args ...any) (any, error) {
	*c.published = append(*c.published, fmt.Sprintf("%s %s %s", cmd, args[0], args[1]))
	return int64(1), nil
}
func (c recordingConn) DoContext(_ context.Context, cmd string, args ...any) (any, error) {
	return c.Do(cmd, args...)
}
func (c recordingConn) ReceiveContext(context.Context) (any, error) { return nil, nil }
func (c recordingConn) Close() error                                { return nil }

type recordingPool struct{ published []string }

func (p *recordingPool) GetContext(context.Context) (redis.Conn, error) {
	return recordingConn{published: &p.published}, nil
}

// The Go emitter is a copy of the server's routing rules for programs that
// do not link the server: it must publish exactly what a Broadcast does,
// on the same channels (rooms of several buckets, users, sockets, except
// lists, disconnects).
func TestEmitterMatchesServerWire(t *testing.T) {
	sid := newSessionID(42)
	rooms := roomsInDistinctBuckets(3)
	data := json.RawMessage(`{"x":[1,"ü"]}`)
	const prefix = "w:"
	p := &Presence{opts: PresenceOptions{Prefix: prefix}}
	server := func(rs, users, socks, except, exceptSocks []string, e envelope) []string {
		var all []string
		all = append(all, rs...)
		for _, u := range users {
			all = append(all, userRoom(u))
		}
		for _, s := range socks {
			all = append(all, socketRoom(s))
		}
		var out []string
		for _, m := range bucketEnvelopes(all, except, exceptSocks, e) {
			out = append(out, fmt.Sprintf("SPUBLISH %s %s", p.bucketChannel(m.bucket), m.body))
		}
		return out
	}
	for name, tc := range map[string]struct {
		rs, users, socks, except, exceptSocks []string
		disconnect                            bool
	}{
		"one room":                 {rs: rooms[:1]},
		"rooms of three buckets":   {rs: rooms, except: []string{"quiet"}, exceptSocks: []string{sid}},
		"a user and a socket":      {users: []string{"zoë"}, socks: []string{sid}},
		"disconnect a user":        {users: []string{"mallory"}, disconnect: true},
		"rooms, users and sockets": {rs: rooms[1:], users: []string{"a", "b"}, socks: []string{sid}},
	} {
		pool := &recordingPool{}
		em := emitter.New(pool, emitter.Options{Prefix: prefix, Publish: "SPUBLISH"})
		b := em.To(tc.rs...).ToUser(tc.users...).ToSocket(tc.socks...).Except(tc.except...).ExceptSocket(tc.exceptSocks...)
		e := envelope{Event: "news", Data: data}
		var err error
		if tc.disconnect {
			e = envelope{Kind: "disconnect"}
			err = b.Disconnect(context.Background())
		} else {
			err = b.Emit(context.Background(), "news", data)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := server(tc.rs, tc.users, tc.socks, tc.except, tc.exceptSocks, e)
		if !slices.Equal(pool.published, want) {
			t.Errorf("%s: the emitter published\n%q\nthe server publishes\n%q", name, pool.published, want)
		}
	}
}
