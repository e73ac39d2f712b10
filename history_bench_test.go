package main

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/gomodule/redigo/redis"
)

// BenchmarkPatchHistory measures what the room history costs Redis: one
// state patch (an update event, published and, with history on, appended to
// the room's history and trimmed) per op, on the tests' real Redis, for a
// room of one connection. redis-us/op is redis-server's own time in the
// script (INFO commandstats, evalsha), the figure history changes; ns/op is
// the round trip.
func BenchmarkPatchHistory(b *testing.B) {
	for _, h := range []struct {
		name string
		opts HistoryOptions
	}{{"off", HistoryOptions{TTL: -1, Max: -1}}, {"on", HistoryOptions{}}} {
		b.Run("history="+h.name, func(b *testing.B) {
			opts := testOptions(b)
			opts.Presence.History = h.opts
			n := startNode(b, opts)
			p := n.srv.presence
			ctx := tctx(b)
			room, sid, connID := "bench-"+newID(), newID(), newID()
			if _, err := p.do(ctx, joinScript, p.joinArgs(room, sid, connID, "", "u", `"u"`, "{}", 60000, 120000,
				p.opts.MaxStateBytes, "", "0", "count", 100, 0)...); err != nil {
				b.Fatal(err)
			}
			c := n.srv.pool.Get()
			defer c.Close()
			calls0, usec0 := evalshaStats(b, c)
			b.ResetTimer()
			for i := range b.N {
				args := beforeLast(p.connArgs(room, sid, connID, -1, 60000, 120000, p.opts.MaxStateBytes),
					`"i"`, strconv.Itoa(i))
				if _, err := p.do(ctx, patchScript, args...); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			calls1, usec1 := evalshaStats(b, c)
			if calls1 > calls0 {
				b.ReportMetric(float64(usec1-usec0)/float64(calls1-calls0), "redis-us/op")
			}
		})
	}
}

var evalshaStat = regexp.MustCompile(`cmdstat_evalsha:calls=(\d+),usec=(\d+)`)

// evalshaStats returns Redis's count of EVALSHA calls and their time so far.
func evalshaStats(b *testing.B, c redis.Conn) (calls, usec int64) {
	b.Helper()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		b.Fatal(err)
	}
	m := evalshaStat.FindStringSubmatch(info)
	if m == nil {
		return 0, 0
	}
	calls, _ = strconv.ParseInt(m[1], 10, 64)
	usec, _ = strconv.ParseInt(m[2], 10, 64)
	return calls, usec
}
