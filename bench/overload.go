package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"rtm/client"
)

// The overload scenario (-scenario overload): -members connections join one
// room on one node, then each sends a state patch every -patch-every (or at
// the pace that offers -offered deliveries per second) for -duration, open
// loop: a member does not wait for its previous patch's ack. Then the load
// stops and fresh probes measure how long the node takes to answer a join and
// a heartbeat within -probe-ok again. See bench/README.md, "Overload".

// presencePrefix starts the JSON array of a presence event.
var presencePrefix = []byte(`["` + client.EventPresence + `",`)

// Ack outcomes counted besides the ack error codes of PROTOCOL.md.
const (
	outcomeOK          = "ok"
	outcomeLostTimeout = "lost: timeout"    // no answer within -timeout
	outcomeLostClosed  = "lost: conn ended" // the connection ended first
	outcomeOther       = "other"
)

// ackOutcome classifies the result of a call: "ok", the ack's error code, or
// a lost ack (timeout or connection ended). The second result reports
// whether the server answered.
func ackOutcome(err error) (string, bool) {
	var ae *client.AckError
	switch {
	case err == nil:
		return outcomeOK, true
	case errors.As(err, &ae):
		return ae.Code, true
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeLostTimeout, false
	case errors.Is(err, client.ErrClosed):
		return outcomeLostClosed, false
	}
	return outcomeOther, false
}

// tally counts occurrences by key. It is safe for concurrent use.
type tally struct {
	mu sync.Mutex // guards m
	m  map[string]int64
}

func newTally() *tally { return &tally{m: map[string]int64{}} }

// add counts one occurrence of key.
func (t *tally) add(key string) {
	t.mu.Lock()
	t.m[key]++
	t.mu.Unlock()
}

// snapshot returns a copy of the counts.
func (t *tally) snapshot() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.m))
	for k, v := range t.m {
		out[k] = v
	}
	return out
}

// sum returns the total of the counts whose key passes keep (all when nil).
func (t *tally) sum(keep func(string) bool) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for k, v := range t.m {
		if keep == nil || keep(k) {
			n += v
		}
	}
	return n
}

// perSecond is n over d, 0 when d is not positive.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// patchInterval is the time between two patches of one member: -patch-every,
// or, with -offered D, the interval at which members patching members each
// offer D deliveries per second (every patch is delivered to every member).
func (c *config) patchInterval() time.Duration {
	if c.offered > 0 {
		return time.Duration(float64(c.members) * float64(c.members) / c.offered * float64(time.Second))
	}
	return c.patchEvery
}

// recoveryTime probes every `every` from stop on until a probe passes, and
// returns how long after stop the passing probe started. It gives up after
// limit (false) or when ctx ends.
func recoveryTime(ctx context.Context, stop time.Time, limit, every time.Duration, probe func(context.Context) bool) (time.Duration, bool) {
	deadline := stop.Add(limit)
	for {
		start := time.Now()
		if !start.Before(deadline) || ctx.Err() != nil {
			return time.Since(stop), false
		}
		pctx, cancel := context.WithDeadline(ctx, deadline)
		ok := probe(pctx)
		cancel()
		if ok {
			return max(start.Sub(stop), 0), true
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(start.Add(every))):
		}
	}
}

// member is one connection of the overload room.
type member struct {
	idx     int
	c       *client.Conn
	joined  atomic.Bool
	closing atomic.Bool  // we are closing it: its end is not a disconnect
	lastSeq atomic.Int64 // written by its read loop only
}

// overload holds one overload run's state and counters.
type overload struct {
	cfg     *config
	room    string
	members []*member
	dialer  *websocket.Dialer

	activeMu sync.Mutex // guards active
	active   []*member  // joined members
	rr       atomic.Uint64

	sem      chan struct{} // bounds calls in flight (-max-inflight)
	inflight sync.WaitGroup

	joinOK                  atomic.Int64
	joinFail, acks, discErr *tally
	notSent, patchN         atomic.Int64
	delivered, gaps         atomic.Int64
	disconnected            atomic.Int64
	recording               atomic.Bool // from the load phase on: record delivery latency

	joinH, ackH, deliveryH *Windowed
}

// OverloadReport is the result of -scenario overload.
type OverloadReport struct {
	Date                    string             `json:"date"`
	Target                  string             `json:"target"`
	EIO                     int                `json:"eio"`
	Members                 int                `json:"members"`
	PatchEveryMs            float64            `json:"patch_every_ms"`
	OfferedPatchesPerSec    float64            `json:"offered_patches_per_second"`
	OfferedDeliveriesPerSec float64            `json:"offered_deliveries_per_second"`
	LoadSeconds             float64            `json:"load_seconds"`
	JoinsOK                 int64              `json:"joins_ok"`
	JoinsFailed             map[string]int64   `json:"joins_failed_by_code"`
	Acks                    map[string]int64   `json:"acks_by_code"`
	AcksLost                int64              `json:"acks_lost"`
	NotSent                 int64              `json:"patches_not_sent_generator_cap"`
	Disconnected            int64              `json:"disconnected_by_server"`
	DisconnectReasons       map[string]int64   `json:"disconnect_reasons,omitempty"`
	Latency                 map[string]Summary `json:"latency"`
	DeliveriesPerSec        float64            `json:"deliveries_per_second_load"`
	Deliveries              int64              `json:"deliveries_load"`
	DeliveriesAfterStop     int64              `json:"deliveries_after_stop"`
	SeqGaps                 int64              `json:"seq_gaps"`
	Recovered               bool               `json:"recovered"`
	RecoveryMs              float64            `json:"recovery_ms"`
	Server                  *ServerFigures     `json:"server,omitempty"`
	ServerCPUMicrosPerDel   float64            `json:"server_cpu_us_per_delivery"`
	// ServerCPUMicrosPerDelAll counts from the load's start to the end of
	// the drain (recovery probes included), over every delivery since.
	ServerCPUMicrosPerDelAll float64  `json:"server_cpu_us_per_delivery_until_drained"`
	BenchCPU                 float64  `json:"bench_cpu_percent_load"`
	Checks                   []string `json:"failed_checks"`
}

// runOverload performs the overload scenario against c.targets[0].
func runOverload(c *config) (*OverloadReport, error) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	o := &overload{cfg: c, room: fmt.Sprintf("overload-%d", time.Now().UnixNano()), sem: make(chan struct{}, c.maxInflight),
		joinFail: newTally(), acks: newTally(), discErr: newTally(),
		joinH: NewWindowed(), ackH: NewWindowed(), deliveryH: NewWindowed(), dialer: (&runner{cfg: c}).dialer(-1)}
	for i := range c.members {
		o.members = append(o.members, &member{idx: i})
	}
	target := c.targets[0]
	base, _ := scrape(target) // nil when the node has no /metrics

	stopLive := o.live(ctx)
	defer stopLive()
	o.ramp(ctx, target)

	begin, _ := scrape(target)
	cpu0, t0 := cpuSeconds(), time.Now()
	o.recording.Store(true)
	d0 := o.delivered.Load()
	if ctx.Err() == nil {
		lctx, lcancel := context.WithTimeout(ctx, c.duration)
		o.load(lctx)
		lcancel()
	}
	tStop, cpu1 := time.Now(), cpuSeconds()
	d1 := o.delivered.Load()
	end, _ := scrape(target)

	// Recovery: probe while the acks still in flight come back.
	rec, recovered := recoveryTime(ctx, tStop, c.recoveryLimit, 100*time.Millisecond, func(pctx context.Context) bool {
		return o.probe(pctx, target)
	})
	o.inflight.Wait()
	select {
	case <-ctx.Done():
	case <-time.After(c.drain):
	}
	d2 := o.delivered.Load()
	drained, _ := scrape(target)
	stopLive()
	disc := o.disconnected.Load()
	o.closeAll()

	iv := c.patchInterval()
	rep := &OverloadReport{
		Date: time.Now().UTC().Format(time.RFC3339), Target: target, EIO: c.eio, Members: c.members,
		PatchEveryMs: float64(iv) / float64(time.Millisecond), LoadSeconds: tStop.Sub(t0).Seconds(),
		OfferedPatchesPerSec:    float64(c.members) / iv.Seconds(),
		OfferedDeliveriesPerSec: float64(c.members) * float64(c.members) / iv.Seconds(),
		JoinsOK:                 o.joinOK.Load(), JoinsFailed: o.joinFail.snapshot(), Acks: o.acks.snapshot(),
		AcksLost: o.acks.sum(isLost),
		NotSent:  o.notSent.Load(), Disconnected: disc, DisconnectReasons: o.discErr.snapshot(),
		Latency: map[string]Summary{"join": o.joinH.Total.Summarize(), "patch_ack": o.ackH.Total.Summarize(),
			"event_delivery": o.deliveryH.Total.Summarize()},
		Deliveries: d1 - d0, DeliveriesPerSec: perSecond(d1-d0, tStop.Sub(t0)), DeliveriesAfterStop: d2 - d1,
		SeqGaps: o.gaps.Load(), Recovered: recovered, RecoveryMs: float64(rec) / float64(time.Millisecond),
	}
	if secs := tStop.Sub(t0).Seconds(); secs > 0 {
		rep.BenchCPU = 100 * (cpu1 - cpu0) / secs
	}
	if end != nil {
		f := serverFigures(target, base, begin, end)
		rep.Server = &f
		if begin != nil {
			rep.ServerCPUMicrosPerDel = cpuMicrosPerDelivery(cpuDelta(begin, end), rep.Deliveries)
			if drained != nil {
				rep.ServerCPUMicrosPerDelAll = cpuMicrosPerDelivery(cpuDelta(begin, drained), d2-d0)
			}
		}
	}
	rep.Checks = rep.check()
	return rep, ctx.Err()
}

// isLost reports whether an outcome of the acks tally is a lost ack.
func isLost(outcome string) bool {
	return outcome == outcomeLostTimeout || outcome == outcomeLostClosed
}

// ramp dials and joins every member over cfg.ramp, dialConc at a time.
func (o *overload) ramp(ctx context.Context, target string) {
	work := make(chan *member)
	var wg sync.WaitGroup
	for range min(o.cfg.dialConc, len(o.members)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				o.join(ctx, m, target)
			}
		}()
	}
	start := time.Now()
	for i, m := range o.members {
		if ctx.Err() != nil {
			break
		}
		due := start.Add(time.Duration(float64(o.cfg.ramp) * float64(i) / float64(len(o.members))))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		work <- m
	}
	close(work)
	wg.Wait()
}

// join dials member m and joins it to the room; a failure is counted by code.
func (o *overload) join(ctx context.Context, m *member, target string) {
	dctx, cancel := context.WithTimeout(ctx, o.cfg.timeout)
	defer cancel()
	c, err := client.Dial(dctx, target, client.Options{Protocol: o.cfg.eio, Dialer: o.dialer,
		OnRawEvent: func(data []byte, at time.Time) { o.onEvent(m, data, at) }})
	if err != nil {
		code := errCode(err)
		if code == "other" || code == "timeout" {
			code = "dial"
		}
		o.joinFail.add(code)
		return
	}
	m.c = c
	go o.watch(m)
	t0 := time.Now()
	_, err = c.Join(dctx, client.JoinRequest{RoomID: o.room, UserID: fmt.Sprintf("m%d", m.idx), State: map[string]any{"n": 0}})
	if err != nil {
		o.joinFail.add(errCode(err))
		return
	}
	o.joinH.Record(time.Since(t0))
	o.joinOK.Add(1)
	m.joined.Store(true)
	o.activeMu.Lock()
	o.active = append(o.active, m)
	o.activeMu.Unlock()
}

// watch counts m's connection as disconnected by the server when it ends
// before we close it.
func (o *overload) watch(m *member) {
	<-m.c.Done()
	if m.closing.Load() {
		return
	}
	o.disconnected.Add(1)
	reason := "unknown"
	if err := m.c.Err(); err != nil {
		reason = err.Error()
		if len(reason) > 80 {
			reason = reason[:80]
		}
	}
	o.discErr.add(reason)
}

// onEvent counts and times one event received by m (its packet's JSON
// array, unparsed: a member reads many events, cheaply).
func (o *overload) onEvent(m *member, data []byte, received time.Time) {
	if !bytes.HasPrefix(data, presencePrefix) {
		return
	}
	f, ok := scanPresence(data[len(presencePrefix):])
	if !ok {
		return
	}
	if last := m.lastSeq.Load(); last != 0 && f.seq != last+1 {
		o.gaps.Add(1)
	}
	m.lastSeq.Store(f.seq)
	if o.recording.Load() {
		o.delivered.Add(1)
		o.deliveryH.RecordMicros(received.UnixMicro() - f.ts*1000)
	}
}

// pick returns the next joined member whose connection is open, round-robin,
// or nil.
func (o *overload) pick() *member {
	o.activeMu.Lock()
	defer o.activeMu.Unlock()
	for range len(o.active) {
		m := o.active[o.rr.Add(1)%uint64(len(o.active))]
		if m.c.Err() == nil {
			return m
		}
	}
	return nil
}

// load sends patches at the offered rate, round-robin over the joined
// members, until ctx ends. It never waits for acks.
func (o *overload) load(ctx context.Context) {
	iv := o.cfg.patchInterval().Seconds()
	pace(ctx, func() float64 {
		o.activeMu.Lock()
		n := len(o.active)
		o.activeMu.Unlock()
		return float64(n) / iv
	}, func() {
		m := o.pick()
		if m == nil {
			return
		}
		select {
		case o.sem <- struct{}{}:
		default:
			o.notSent.Add(1)
			return
		}
		o.inflight.Add(1)
		go o.patch(m)
	})
}

// patch sends one state patch on m and counts its outcome.
func (o *overload) patch(m *member) {
	defer func() { <-o.sem; o.inflight.Done() }()
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.timeout)
	defer cancel()
	t0 := time.Now()
	_, err := m.c.Heartbeat(ctx, client.HeartbeatRequest{PatchState: map[string]any{"n": o.patchN.Add(1)}})
	d := time.Since(t0)
	code, answered := ackOutcome(err)
	if answered {
		o.ackH.Record(d)
	}
	o.acks.add(code)
}

// probe dials a fresh connection, joins a room of its own and heartbeats;
// it reports whether both acks came within cfg.probeOK.
func (o *overload) probe(ctx context.Context, target string) bool {
	c, err := client.Dial(ctx, target, client.Options{Protocol: o.cfg.eio, Dialer: o.dialer,
		OnEvent: func(client.Event) {}})
	if err != nil {
		return false
	}
	defer c.Close()
	t0 := time.Now()
	if _, err := c.Join(ctx, client.JoinRequest{RoomID: o.room + "-probe", UserID: "probe"}); err != nil || time.Since(t0) > o.cfg.probeOK {
		return false
	}
	t1 := time.Now()
	_, err = c.Heartbeat(ctx, client.HeartbeatRequest{})
	return err == nil && time.Since(t1) <= o.cfg.probeOK
}

// closeAll closes every member's connection, dialConc at a time.
func (o *overload) closeAll() {
	work := make(chan *member)
	var wg sync.WaitGroup
	for range o.cfg.dialConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				m.closing.Store(true)
				m.c.Close()
			}
		}()
	}
	for _, m := range o.members {
		if m.c != nil {
			work <- m
		}
	}
	close(work)
	wg.Wait()
}

// live prints one progress line a second on stderr until stop is called.
func (o *overload) live(ctx context.Context) (stop func()) {
	start, prevAcks, prevDel := time.Now(), int64(0), int64(0)
	return everySecond(ctx, func(now time.Time) {
		acks, del := o.acks.sum(nil), o.delivered.Load()
		ackW, delW := o.ackH.Rotate(), o.deliveryH.Rotate()
		if !o.cfg.quiet {
			fmt.Fprintf(os.Stderr, "[%4.0fs] joined %d failed %d | acks/s %d p50 %.1f p99 %.1f ms | deliveries/s %d p99 %.0f ms | lost %d | disconnected %d\n",
				now.Sub(start).Seconds(), o.joinOK.Load(), o.joinFail.sum(nil), acks-prevAcks,
				float64(ackW.Quantile(0.5))/1000, float64(ackW.Quantile(0.99))/1000, del-prevDel,
				float64(delW.Quantile(0.99))/1000, o.acks.sum(isLost),
				o.disconnected.Load())
		}
		prevAcks, prevDel = acks, del
	})
}

// check lists the criteria of an orderly node under overload (issue 9) that
// the run missed: every member joined, none disconnected, no ack lost, no
// answer other than ok or rate_limited, event delivery p99 within 5 s, and
// recovery.
func (rep *OverloadReport) check() []string {
	p := []string{}
	if rep.JoinsOK != int64(rep.Members) {
		p = append(p, fmt.Sprintf("%d of %d members joined: %v", rep.JoinsOK, rep.Members, rep.JoinsFailed))
	}
	if rep.Disconnected > 0 {
		p = append(p, fmt.Sprintf("%d connections disconnected by the server", rep.Disconnected))
	}
	if rep.AcksLost > 0 {
		p = append(p, fmt.Sprintf("%d acks lost", rep.AcksLost))
	}
	for code, n := range rep.Acks {
		if code != outcomeOK && code != "rate_limited" && !isLost(code) && n > 0 {
			p = append(p, fmt.Sprintf("%d acks %s", n, code))
		}
	}
	if d := rep.Latency["event_delivery"]; d.P99 > 5000 {
		p = append(p, fmt.Sprintf("event delivery p99 %.0f ms > 5 s", d.P99))
	}
	if !rep.Recovered {
		p = append(p, fmt.Sprintf("not recovered %.0f ms after the load stopped", rep.RecoveryMs))
	}
	sort.Strings(p)
	return p
}

// writeTable prints the report for people.
func (rep *OverloadReport) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\noverload report %s: %s, EIO=%d, one room of %d members, a patch per member every %.0f ms for %.1f s\n",
		rep.Date, rep.Target, rep.EIO, rep.Members, rep.PatchEveryMs, rep.LoadSeconds)
	fmt.Fprintf(w, "offered: %.0f patches/s, %.0f deliveries/s\n", rep.OfferedPatchesPerSec, rep.OfferedDeliveriesPerSec)
	fmt.Fprintf(w, "joins: %d ok, failed %v\n", rep.JoinsOK, rep.JoinsFailed)
	fmt.Fprintf(w, "patch acks: %v (lost %d; not sent, generator cap: %d)\n", rep.Acks, rep.AcksLost, rep.NotSent)
	fmt.Fprintf(w, "disconnected by the server: %d %v\n", rep.Disconnected, rep.DisconnectReasons)
	for _, k := range []string{"join", "patch_ack", "event_delivery"} {
		s := rep.Latency[k]
		fmt.Fprintf(w, "%-15s count %8d  p50 %9.2f ms  p99 %9.2f ms  max %9.2f ms\n", k, s.Count, s.P50, s.P99, s.Max)
	}
	fmt.Fprintf(w, "deliveries: %.0f/s during the load (%d), %d after it stopped; seq gaps %d\n",
		rep.DeliveriesPerSec, rep.Deliveries, rep.DeliveriesAfterStop, rep.SeqGaps)
	if rep.Recovered {
		fmt.Fprintf(w, "recovery: a fresh join+heartbeat acked within the bound %.0f ms after the load stopped\n", rep.RecoveryMs)
	} else {
		fmt.Fprintf(w, "recovery: NOT within %.0f ms\n", rep.RecoveryMs)
	}
	if s := rep.Server; s != nil {
		fmt.Fprintf(w, "server: CPU %.0f%% during the load (%.2f us per delivery; %.2f us until drained), RSS %s, goroutines %.0f\n", s.CPUPercent, rep.ServerCPUMicrosPerDel, rep.ServerCPUMicrosPerDelAll, mib(s.RSSBytes), s.Goroutines)
	}
	fmt.Fprintf(w, "bench CPU during the load: %.0f%%\n", rep.BenchCPU)
	for _, c := range rep.Checks {
		fmt.Fprintln(w, "check failed:", c)
	}
}
