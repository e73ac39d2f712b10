package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/gorilla/websocket"

	"rtm/client"
	"rtm/emitter"
)

// The emit scenario (-scenario emit): -members connections, spread
// round-robin over the -target nodes, gather in one room; then messages are
// published to that room at -msg-rate per second, open loop, for -duration,
// and every member counts what it receives. Two ways to fill the room and
// load it (-emit-via):
//
//   - topic: each member subscribes to one topic (topic:subscribe, a room
//     "topic:<topic>" on the server) and the generator publishes to that room
//     with rtm/emitter, straight to Redis (-redis, -prefix), so that no HTTP
//     path stands in front of the fan-out;
//   - chat: each member joins one presence room and members take turns
//     sending chat:message, which the server delivers to every member (the
//     sender too); members heartbeat every -hb-interval so that their
//     presence stays alive. Servers without topics can run this one.
//
// auto (the default) subscribes a probe connection to a topic and takes
// topic when the server acknowledges it, chat when it answers an error
// (an unknown event). See bench/README.md, "Emit".

// Ways of loading the room.
const (
	emitViaAuto  = "auto"
	emitViaTopic = "topic"
	emitViaChat  = "chat"
)

// emitEvent is the event the generator emits into the topic's room (the
// emitter refuses topic:* names: those come from the servers only).
const emitEvent = "bench:emit"

// Prefixes of the two delivered events' JSON arrays.
var (
	emitPrefix = []byte(`["` + emitEvent + `",`)
	chatPrefix = []byte(`["` + client.EventChat + `",`)
)

// chooseVia resolves -emit-via: an explicit topic or chat stands; auto is
// topic when the probe's topic:subscribe was acknowledged (probeErr nil),
// chat when the server answered it with an error code, and an error when
// the probe got no answer at all.
func chooseVia(flag string, probeErr error) (string, error) {
	switch flag {
	case emitViaTopic, emitViaChat:
		return flag, nil
	case emitViaAuto:
	default:
		return "", fmt.Errorf("-emit-via %q: want auto, topic or chat", flag)
	}
	var ae *client.AckError
	switch {
	case probeErr == nil:
		return emitViaTopic, nil
	case errors.As(probeErr, &ae):
		return emitViaChat, nil
	}
	return "", fmt.Errorf("-emit-via auto: probing topic:subscribe: %w", probeErr)
}

// deliveryTS returns the ts field of a delivered event's JSON array (the
// last "ts" in it: the generator's own for an emit, the server's for a
// chat message), in milliseconds.
func deliveryTS(data []byte) (int64, bool) {
	return scanInt(string(data), `"ts":`, true)
}

// cpuMicrosPerDelivery is CPU seconds over deliveries, in microseconds; 0
// when nothing was delivered.
func cpuMicrosPerDelivery(cpuSeconds float64, deliveries int64) float64 {
	if deliveries <= 0 {
		return 0
	}
	return cpuSeconds * 1e6 / float64(deliveries)
}

// emitMember is one connection of the room.
type emitMember struct {
	idx     int
	target  string
	c       *client.Conn
	closing atomic.Bool // we are closing it: its end is not a disconnect
}

// emitRun holds one emit run's state and counters.
type emitRun struct {
	cfg     *config
	via     string
	room    string // the presence room (chat) or the topic (topic)
	members []*emitMember
	dialer  *websocket.Dialer
	em      *emitter.Emitter

	activeMu sync.Mutex // guards active
	active   []*emitMember
	rr, hbRR atomic.Uint64

	sem      chan struct{} // bounds calls in flight (-max-inflight)
	inflight sync.WaitGroup

	joinFail, sends, beats, discErr *tally
	joinOK, notSent, msgN           atomic.Int64
	expected                        atomic.Int64 // deliveries owed: members joined at each accepted message
	delivered, disconnected         atomic.Int64
	recording                       atomic.Bool

	joinH, sendH, deliveryH *Windowed
}

// EmitReport is the result of -scenario emit.
type EmitReport struct {
	Date                    string             `json:"date"`
	Targets                 []string           `json:"targets"`
	EIO                     int                `json:"eio"`
	Via                     string             `json:"via"`
	Members                 int                `json:"members"`
	MembersJoined           int64              `json:"members_joined"`
	MembersPerNode          []int              `json:"members_joined_per_node"`
	JoinsFailed             map[string]int64   `json:"joins_failed_by_code"`
	OfferedMessagesPerSec   float64            `json:"offered_messages_per_second"`
	OfferedDeliveriesPerSec float64            `json:"offered_deliveries_per_second"`
	LoadSeconds             float64            `json:"load_seconds"`
	Sends                   map[string]int64   `json:"sends_by_outcome"`
	NotSent                 int64              `json:"messages_not_sent_generator_cap"`
	Heartbeats              map[string]int64   `json:"heartbeats_by_outcome,omitempty"`
	ExpectedDeliveries      int64              `json:"expected_deliveries"`
	Deliveries              int64              `json:"deliveries_load"`
	DeliveriesPerSec        float64            `json:"deliveries_per_second_load"`
	DeliveriesAfterStop     int64              `json:"deliveries_after_stop"`
	MissingDeliveries       int64              `json:"missing_deliveries"`
	Disconnected            int64              `json:"disconnected_by_server"`
	DisconnectReasons       map[string]int64   `json:"disconnect_reasons,omitempty"`
	Latency                 map[string]Summary `json:"latency"`
	Servers                 []ServerFigures    `json:"servers,omitempty"`
	DrainSeconds            float64            `json:"drain_seconds"`
	// ServerCPUSeconds is the nodes' CPU from the start of the load until
	// every delivery arrived (or the drain gave up), over every delivery of
	// that span: ServerCPUMicrosPerDel. The Load figures count the load's
	// span only, which flatters a run that leaves a backlog in socket
	// buffers.
	ServerCPUSeconds          float64  `json:"server_cpu_seconds"`
	ServerCPUMicrosPerDel     float64  `json:"server_cpu_us_per_delivery"`
	ServerCPUSecondsLoad      float64  `json:"server_cpu_seconds_load"`
	ServerCPUMicrosPerDelLoad float64  `json:"server_cpu_us_per_delivery_load"`
	ServerRSSBytes            float64  `json:"server_rss_bytes"`
	BenchCPU                  float64  `json:"bench_cpu_percent_load"`
	Checks                    []string `json:"failed_checks"`
}

// runEmit performs the emit scenario.
func runEmit(c *config) (*EmitReport, error) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	stamp := time.Now().UnixNano()
	e := &emitRun{cfg: c, sem: make(chan struct{}, c.maxInflight),
		joinFail: newTally(), sends: newTally(), beats: newTally(), discErr: newTally(),
		joinH: NewWindowed(), sendH: NewWindowed(), deliveryH: NewWindowed(), dialer: (&runner{cfg: c}).dialer(-1)}
	var err error
	if e.via, err = e.probe(ctx); err != nil {
		return nil, err
	}
	if e.via == emitViaTopic {
		if c.redisAddr == "" {
			return nil, errors.New("-emit-via topic publishes through Redis: give -redis (and -prefix)")
		}
		pool := &redis.Pool{MaxIdle: 64, IdleTimeout: time.Minute, Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", c.redisAddr, redis.DialConnectTimeout(c.timeout))
		}}
		defer pool.Close()
		e.em = emitter.New(pool, emitter.Options{Prefix: c.prefix})
		// The emitter asks Redis for its publish command at its first
		// publish: do that one to a room nobody is in.
		wctx, wcancel := context.WithTimeout(ctx, c.timeout)
		err := e.em.To(fmt.Sprintf("bench-warmup-%d", stamp)).Emit(wctx, emitEvent, nil)
		wcancel()
		if err != nil {
			return nil, fmt.Errorf("emitter: %w", err)
		}
	}
	e.room = fmt.Sprintf("emit-%d", stamp)
	for i := range c.members {
		e.members = append(e.members, &emitMember{idx: i, target: c.targets[i%len(c.targets)]})
	}
	base := scrapeAll(c.targets)

	stopLive := e.live(ctx)
	defer stopLive()
	e.ramp(ctx)

	begin := scrapeAll(c.targets)
	cpu0, t0 := cpuSeconds(), time.Now()
	e.recording.Store(true)
	d0 := e.delivered.Load()
	if ctx.Err() == nil {
		lctx, lcancel := context.WithTimeout(ctx, c.duration)
		e.load(lctx)
		lcancel()
	}
	tStop, cpu1 := time.Now(), cpuSeconds()
	d1 := e.delivered.Load()
	end := scrapeAll(c.targets)

	e.inflight.Wait()
	drainStart := time.Now()
	e.drained(ctx, d0)
	d2 := e.delivered.Load()
	drained := scrapeAll(c.targets)
	stopLive()
	disc := e.disconnected.Load()
	e.closeAll()

	joined := e.joinOK.Load()
	perNode := make([]int, len(c.targets))
	for _, m := range e.activeMembers() {
		for i, t := range c.targets {
			if m.target == t {
				perNode[i]++
			}
		}
	}
	rep := &EmitReport{
		Date: time.Now().UTC().Format(time.RFC3339), Targets: c.targets, EIO: c.eio, Via: e.via,
		Members: c.members, MembersJoined: joined, MembersPerNode: perNode, JoinsFailed: e.joinFail.snapshot(),
		OfferedMessagesPerSec: c.msgRate, OfferedDeliveriesPerSec: c.msgRate * float64(joined),
		LoadSeconds: tStop.Sub(t0).Seconds(), Sends: e.sends.snapshot(), NotSent: e.notSent.Load(),
		ExpectedDeliveries: e.expected.Load(), Deliveries: d1 - d0, DeliveriesPerSec: perSecond(d1-d0, tStop.Sub(t0)),
		DeliveriesAfterStop: d2 - d1, DrainSeconds: time.Since(drainStart).Seconds(), MissingDeliveries: e.expected.Load() - (d2 - d0),
		Disconnected: disc, DisconnectReasons: e.discErr.snapshot(),
		Latency: map[string]Summary{"join": e.joinH.Total.Summarize(), "send": e.sendH.Total.Summarize(),
			"delivery": e.deliveryH.Total.Summarize()},
	}
	if e.via == emitViaChat {
		rep.Heartbeats = e.beats.snapshot()
	}
	if secs := rep.LoadSeconds; secs > 0 {
		rep.BenchCPU = 100 * (cpu1 - cpu0) / secs
	}
	for i, t := range c.targets {
		if end[i] == nil {
			continue
		}
		f := serverFigures(t, base[i], begin[i], end[i])
		rep.Servers = append(rep.Servers, f)
		rep.ServerRSSBytes += f.RSSBytes
		if begin[i] != nil {
			rep.ServerCPUSecondsLoad += cpuDelta(begin[i], end[i])
			if drained[i] != nil {
				rep.ServerCPUSeconds += cpuDelta(begin[i], drained[i])
			}
		}
	}
	rep.ServerCPUMicrosPerDel = cpuMicrosPerDelivery(rep.ServerCPUSeconds, d2-d0)
	rep.ServerCPUMicrosPerDelLoad = cpuMicrosPerDelivery(rep.ServerCPUSecondsLoad, rep.Deliveries)
	rep.Checks = rep.check()
	return rep, ctx.Err()
}

// cpuDelta is the change of a node's process_cpu_seconds_total from a to b.
func cpuDelta(a, b *serverSample) float64 {
	return b.M["process_cpu_seconds_total"] - a.M["process_cpu_seconds_total"]
}

// drained waits until every delivery owed since d0 has arrived, or none
// arrived for -drain, or -recovery-limit passed, or ctx ended.
func (e *emitRun) drained(ctx context.Context, d0 int64) {
	deadline := time.Now().Add(e.cfg.recoveryLimit)
	last, lastAt := e.delivered.Load(), time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) {
		now := e.delivered.Load()
		if now-d0 >= e.expected.Load() {
			return
		}
		if now != last {
			last, lastAt = now, time.Now()
		} else if time.Since(lastAt) >= e.cfg.drain {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probe resolves -emit-via, with a probe connection to the first node when
// it is auto.
func (e *emitRun) probe(ctx context.Context) (string, error) {
	if e.cfg.emitVia != emitViaAuto {
		return chooseVia(e.cfg.emitVia, nil)
	}
	pctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	c, err := client.Dial(pctx, e.cfg.targets[0], client.Options{Protocol: e.cfg.eio, Dialer: e.dialer,
		OnEvent: func(client.Event) {}})
	if err != nil {
		return "", fmt.Errorf("-emit-via auto: probe: %w", err)
	}
	defer c.Close()
	return chooseVia(emitViaAuto, c.Subscribe(pctx, fmt.Sprintf("bench-probe-%d", time.Now().UnixNano())))
}

// ramp dials every member over cfg.ramp, dialConc at a time, and subscribes
// or joins it.
func (e *emitRun) ramp(ctx context.Context) {
	work := make(chan *emitMember)
	var wg sync.WaitGroup
	for range min(e.cfg.dialConc, len(e.members)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				e.join(ctx, m)
			}
		}()
	}
	start := time.Now()
	for i, m := range e.members {
		if ctx.Err() != nil {
			break
		}
		due := start.Add(time.Duration(float64(e.cfg.ramp) * float64(i) / float64(len(e.members))))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		work <- m
	}
	close(work)
	wg.Wait()
}

// join dials m, then subscribes it to the topic or joins it to the room; a
// failure is counted by code.
func (e *emitRun) join(ctx context.Context, m *emitMember) {
	dctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	c, err := client.Dial(dctx, m.target, client.Options{Protocol: e.cfg.eio, Dialer: e.dialer,
		OnRawEvent: func(data []byte, at time.Time) { e.onEvent(data, at) }})
	if err != nil {
		code := errCode(err)
		if code == "other" || code == "timeout" {
			code = "dial"
		}
		e.joinFail.add(code)
		return
	}
	m.c = c
	go e.watch(m)
	t0 := time.Now()
	if e.via == emitViaTopic {
		err = c.Subscribe(dctx, e.room)
	} else {
		_, err = c.Join(dctx, client.JoinRequest{RoomID: e.room, UserID: fmt.Sprintf("m%d", m.idx)})
	}
	if err != nil {
		e.joinFail.add(errCode(err))
		return
	}
	e.joinH.Record(time.Since(t0))
	e.joinOK.Add(1)
	e.activeMu.Lock()
	e.active = append(e.active, m)
	e.activeMu.Unlock()
}

// watch counts m's connection as disconnected by the server when it ends
// before we close it.
func (e *emitRun) watch(m *emitMember) {
	<-m.c.Done()
	if m.closing.Load() {
		return
	}
	e.disconnected.Add(1)
	reason := "unknown"
	if err := m.c.Err(); err != nil {
		reason = err.Error()
		if len(reason) > 80 {
			reason = reason[:80]
		}
	}
	e.discErr.add(reason)
}

// onEvent counts and times one delivered message (its packet's JSON array,
// unparsed).
func (e *emitRun) onEvent(data []byte, received time.Time) {
	if !bytes.HasPrefix(data, emitPrefix) && !bytes.HasPrefix(data, chatPrefix) {
		return
	}
	if !e.recording.Load() {
		return
	}
	e.delivered.Add(1)
	if ts, ok := deliveryTS(data); ok {
		e.deliveryH.RecordMicros(received.UnixMicro() - ts*1000)
	}
}

// activeMembers returns the joined members.
func (e *emitRun) activeMembers() []*emitMember {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()
	return append([]*emitMember(nil), e.active...)
}

// pick returns the next joined member whose connection is open, round-robin
// on rr, or nil.
func (e *emitRun) pick(rr *atomic.Uint64) *emitMember {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()
	for range len(e.active) {
		m := e.active[rr.Add(1)%uint64(len(e.active))]
		if m.c.Err() == nil {
			return m
		}
	}
	return nil
}

// open is the number of joined members whose connection the server has not
// ended: the receivers a message accepted now is owed to.
func (e *emitRun) open() int64 { return e.joinOK.Load() - e.disconnected.Load() }

// launch runs op in a goroutine when a slot of -max-inflight is free, else
// counts the message as not sent.
func (e *emitRun) launch(op func()) {
	select {
	case e.sem <- struct{}{}:
	default:
		e.notSent.Add(1)
		return
	}
	e.inflight.Add(1)
	go func() {
		defer func() { <-e.sem; e.inflight.Done() }()
		op()
	}()
}

// load publishes -msg-rate messages per second until ctx ends, never
// waiting for one to be taken before the next; in chat mode it also
// heartbeats every member every -hb-interval.
func (e *emitRun) load(ctx context.Context) {
	var wg sync.WaitGroup
	if e.via == emitViaChat && e.cfg.hbInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace(ctx, func() float64 { return float64(e.joinOK.Load()) / e.cfg.hbInterval.Seconds() }, func() {
				if m := e.pick(&e.hbRR); m != nil {
					e.launch(func() { e.heartbeat(m) })
				}
			})
		}()
	}
	pace(ctx, func() float64 { return e.cfg.msgRate }, func() {
		if e.via == emitViaTopic {
			e.launch(e.publish)
		} else if m := e.pick(&e.rr); m != nil {
			e.launch(func() { e.chat(m) })
		}
	})
	wg.Wait()
}

// publish emits one message into the topic's room through Redis.
func (e *emitRun) publish() {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.timeout)
	defer cancel()
	n := e.msgN.Add(1)
	data := json.RawMessage(`{"n":` + strconv.FormatInt(n, 10) + `,"ts":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`)
	owed := e.open()
	t0 := time.Now()
	err := e.em.To(topicRoom(e.room)).Emit(ctx, emitEvent, data)
	e.sendH.Record(time.Since(t0))
	if err != nil {
		e.sends.add(redisOutcome(err))
		return
	}
	e.sends.add(outcomeOK)
	e.expected.Add(owed)
}

// topicRoom is the server's room of a topic (topics.go).
func topicRoom(topic string) string { return "topic:" + topic }

// redisOutcome names a failed publish.
func redisOutcome(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeLostTimeout
	case errors.Is(err, emitter.ErrInvalid):
		return "invalid"
	}
	return "redis error"
}

// chat sends one chat:message from m; the server delivers it to every
// member of the room, m too.
func (e *emitRun) chat(m *emitMember) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.timeout)
	defer cancel()
	n := e.msgN.Add(1)
	owed := e.open()
	t0 := time.Now()
	_, _, err := m.c.Chat(ctx, "m"+strconv.FormatInt(n, 10))
	code, answered := ackOutcome(err)
	if answered {
		e.sendH.Record(time.Since(t0))
	}
	e.sends.add(code)
	if err == nil {
		e.expected.Add(owed)
	}
}

// heartbeat sends one plain heartbeat on m.
func (e *emitRun) heartbeat(m *emitMember) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.timeout)
	defer cancel()
	_, err := m.c.Heartbeat(ctx, client.HeartbeatRequest{})
	code, _ := ackOutcome(err)
	e.beats.add(code)
}

// closeAll closes every member's connection, dialConc at a time.
func (e *emitRun) closeAll() {
	work := make(chan *emitMember)
	var wg sync.WaitGroup
	for range e.cfg.dialConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				m.closing.Store(true)
				m.c.Close()
			}
		}()
	}
	for _, m := range e.members {
		if m.c != nil {
			work <- m
		}
	}
	close(work)
	wg.Wait()
}

// live prints one progress line a second on stderr until stop is called.
func (e *emitRun) live(ctx context.Context) (stop func()) {
	start, prevSends, prevDel := time.Now(), int64(0), int64(0)
	return everySecond(ctx, func(now time.Time) {
		sends, del := e.sends.sum(nil), e.delivered.Load()
		delW := e.deliveryH.Rotate()
		if !e.cfg.quiet {
			fmt.Fprintf(os.Stderr, "[%4.0fs] %s | joined %d failed %d | sent/s %d | deliveries/s %d p99 %.0f ms | not sent %d | disconnected %d\n",
				now.Sub(start).Seconds(), e.via, e.joinOK.Load(), e.joinFail.sum(nil), sends-prevSends, del-prevDel,
				float64(delW.Quantile(0.99))/1000, e.notSent.Load(), e.disconnected.Load())
		}
		prevSends, prevDel = sends, del
	})
}

// check lists what went wrong: a member not joined, a connection dropped, a
// message not taken, a delivery missing.
func (rep *EmitReport) check() []string {
	p := []string{}
	if rep.MembersJoined != int64(rep.Members) {
		p = append(p, fmt.Sprintf("%d of %d members joined: %v", rep.MembersJoined, rep.Members, rep.JoinsFailed))
	}
	if rep.Disconnected > 0 {
		p = append(p, fmt.Sprintf("%d connections disconnected by the server", rep.Disconnected))
	}
	for code, n := range rep.Sends {
		if code != outcomeOK && n > 0 {
			p = append(p, fmt.Sprintf("%d messages answered %s", n, code))
		}
	}
	if rep.NotSent > 0 {
		p = append(p, fmt.Sprintf("%d messages not sent (generator cap -max-inflight)", rep.NotSent))
	}
	if rep.MissingDeliveries != 0 {
		p = append(p, fmt.Sprintf("%d deliveries missing", rep.MissingDeliveries))
	}
	sort.Strings(p)
	return p
}

// writeTable prints the report for people.
func (rep *EmitReport) writeTable(w io.Writer) {
	via := "topic (rtm/emitter through Redis)"
	if rep.Via == emitViaChat {
		via = "chat:message from the members"
	}
	fmt.Fprintf(w, "\nemit report %s: %v, EIO=%d, one room of %d members, via %s, for %.1f s\n",
		rep.Date, rep.Targets, rep.EIO, rep.Members, via, rep.LoadSeconds)
	fmt.Fprintf(w, "members: %d joined %v per node, failed %v\n", rep.MembersJoined, rep.MembersPerNode, rep.JoinsFailed)
	fmt.Fprintf(w, "offered: %.0f messages/s, %.0f deliveries/s\n", rep.OfferedMessagesPerSec, rep.OfferedDeliveriesPerSec)
	fmt.Fprintf(w, "messages: %v (not sent, generator cap: %d)", rep.Sends, rep.NotSent)
	if rep.Heartbeats != nil {
		fmt.Fprintf(w, "; heartbeats %v", rep.Heartbeats)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "deliveries: %.0f/s during the load (%d), %d after it stopped; expected %d, missing %d\n",
		rep.DeliveriesPerSec, rep.Deliveries, rep.DeliveriesAfterStop, rep.ExpectedDeliveries, rep.MissingDeliveries)
	fmt.Fprintf(w, "disconnected by the server: %d %v\n", rep.Disconnected, rep.DisconnectReasons)
	for _, k := range []string{"join", "send", "delivery"} {
		s := rep.Latency[k]
		fmt.Fprintf(w, "%-9s count %8d  p50 %9.2f ms  p99 %9.2f ms  max %9.2f ms\n", k, s.Count, s.P50, s.P99, s.Max)
	}
	for _, s := range rep.Servers {
		fmt.Fprintf(w, "server %s: CPU %.0f%% during the load, RSS %s, sockets %.0f\n", s.Target, s.CPUPercent, mib(s.RSSBytes), s.Sockets)
	}
	fmt.Fprintf(w, "servers: %.2f CPU seconds from the load's start until drained (%.1f s after the stop): %.2f us per delivery; during the load only %.2f us; RSS %s in all\n",
		rep.ServerCPUSeconds, rep.DrainSeconds, rep.ServerCPUMicrosPerDel, rep.ServerCPUMicrosPerDelLoad, mib(rep.ServerRSSBytes))
	fmt.Fprintf(w, "bench CPU during the load: %.0f%%\n", rep.BenchCPU)
	for _, c := range rep.Checks {
		fmt.Fprintln(w, "check failed:", c)
	}
}

// mainEmit runs -scenario emit, prints its report and exits 1 when a check
// failed.
func mainEmit(c *config) {
	rep, err := runEmit(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	printReport(c.jsonOut, rep)
	if len(rep.Checks) > 0 {
		os.Exit(1)
	}
}

// validateEmit checks the flags of -scenario emit.
func (c *config) validateEmit() error {
	switch {
	case c.members < 1 || c.members > 100_000:
		return errors.New("-members must be within 1..100000")
	case c.msgRate <= 0:
		return errors.New("-scenario emit needs -msg-rate > 0")
	}
	_, err := chooseVia(c.emitVia, nil)
	return err
}
