package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// serverSample is one read of a node's /metrics: unlabelled series by name;
// labelled ones are summed under their name.
type serverSample struct {
	At time.Time
	M  map[string]float64
}

var metricsClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}

func scrape(target string) (*serverSample, error) {
	resp, err := metricsClient.Get(target + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: HTTP %d", target, resp.StatusCode)
	}
	s := &serverSample{At: time.Now(), M: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			if strings.HasSuffix(name[:i], "_bucket") {
				// Keep the server-side heartbeat handling time histogram.
				const hb = `rtm_handler_seconds_bucket{event="presence:heartbeat",le="`
				if strings.HasPrefix(name, hb) {
					name = "hb_le=" + strings.TrimSuffix(name[len(hb):], `"}`)
				} else {
					continue
				}
			} else {
				name = name[:i]
			}
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err == nil {
			s.M[name] += v
		}
	}
	return s, sc.Err()
}

// scrapeAll reads every target; a failed read is nil.
func scrapeAll(targets []string) []*serverSample {
	out := make([]*serverSample, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], _ = scrape(t)
		}()
	}
	wg.Wait()
	return out
}

// ServerFigures is one node's state and its change over a phase.
type ServerFigures struct {
	Target           string  `json:"target"`
	RSSBytes         float64 `json:"rss_bytes"`
	RSSBaseline      float64 `json:"rss_baseline_bytes"`
	HeapInuse        float64 `json:"heap_inuse_bytes"`
	StackInuse       float64 `json:"stack_inuse_bytes"`
	Goroutines       float64 `json:"goroutines"`
	GoroutinesBase   float64 `json:"goroutines_baseline"`
	Sockets          float64 `json:"sockets"`
	Joined           float64 `json:"joined_connections"`
	CPUPercent       float64 `json:"cpu_percent_steady"`
	RSSPerConn       float64 `json:"rss_bytes_per_connection"`
	HeapPerConn      float64 `json:"heap_inuse_bytes_per_connection"`
	StackPerConn     float64 `json:"stack_inuse_bytes_per_connection"`
	GoroutinesPer    float64 `json:"goroutines_per_connection"`
	MeanBeatBatch    float64 `json:"mean_heartbeat_batch_steady"`
	RedisRTTMeanMs   float64 `json:"redis_roundtrip_mean_ms_steady"`
	ReaperRunsSteady float64 `json:"reaper_runs_steady"`
	// HandlerP50Ms and HandlerP99Ms: the server's own heartbeat handling time
	// in the steady phase (rtm_handler_seconds, upper bound of the bucket).
	HandlerP50Ms float64 `json:"server_heartbeat_handler_p50_ms_steady"`
	HandlerP99Ms float64 `json:"server_heartbeat_handler_p99_ms_steady"`
	// PubSubPerSec is the messages the node received on the events
	// channels per second in the steady phase; PubSubBuckets the buckets
	// it was subscribed to at the end.
	PubSubPerSec  float64 `json:"pubsub_messages_per_second_steady"`
	PubSubBuckets float64 `json:"pubsub_buckets"`
	// RedisCalls is the node's Redis calls in the steady phase (one per
	// script call or pipeline; on a cluster a pipeline goes to each master
	// concerned at once).
	RedisCalls float64 `json:"redis_calls_steady"`
}

// bucketQuantile returns the upper bound of the histogram bucket holding
// quantile q of the values added between begin and end.
func bucketQuantile(begin, end map[string]float64, q float64) float64 {
	type b struct{ le, n float64 }
	var bs []b
	for k, v := range end {
		if le, ok := strings.CutPrefix(k, "hb_le="); ok && le != "+Inf" {
			f, err := strconv.ParseFloat(le, 64)
			if err == nil {
				bs = append(bs, b{f, v - begin[k]})
			}
		}
	}
	total := end["hb_le=+Inf"] - begin["hb_le=+Inf"]
	if total <= 0 {
		return 0
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, x := range bs {
		if x.n >= q*total {
			return x.le * 1000
		}
	}
	return -1 // beyond the last bucket
}

func serverFigures(target string, base, begin, end *serverSample) ServerFigures {
	f := ServerFigures{Target: target}
	if end == nil {
		return f
	}
	m := end.M
	f.RSSBytes, f.Goroutines = m["process_resident_memory_bytes"], m["go_goroutines"]
	f.HeapInuse, f.StackInuse = m["go_memstats_heap_inuse_bytes"], m["go_memstats_stack_inuse_bytes"]
	f.Sockets, f.Joined = m["rtm_sockets"], m["rtm_joined_connections"]
	f.PubSubBuckets = m["rtm_pubsub_buckets"]
	if base != nil {
		f.RSSBaseline, f.GoroutinesBase = base.M["process_resident_memory_bytes"], base.M["go_goroutines"]
		if f.Sockets > 0 {
			f.RSSPerConn = (f.RSSBytes - f.RSSBaseline) / f.Sockets
			f.HeapPerConn = (f.HeapInuse - base.M["go_memstats_heap_inuse_bytes"]) / f.Sockets
			f.StackPerConn = (f.StackInuse - base.M["go_memstats_stack_inuse_bytes"]) / f.Sockets
			f.GoroutinesPer = (f.Goroutines - f.GoroutinesBase) / f.Sockets
		}
	}
	if begin != nil {
		d := func(k string) float64 { return m[k] - begin.M[k] }
		if secs := end.At.Sub(begin.At).Seconds(); secs > 0 {
			f.CPUPercent = 100 * d("process_cpu_seconds_total") / secs
			f.PubSubPerSec = d("rtm_pubsub_messages_total") / secs
		}
		if n := d("rtm_heartbeat_batch_size_count"); n > 0 {
			f.MeanBeatBatch = d("rtm_heartbeat_batch_size_sum") / n
		}
		f.RedisCalls = d("rtm_redis_roundtrip_seconds_count")
		if n := f.RedisCalls; n > 0 {
			f.RedisRTTMeanMs = 1000 * d("rtm_redis_roundtrip_seconds_sum") / n
		}
		f.ReaperRunsSteady = d("rtm_reaper_runs_total")
		f.HandlerP50Ms = bucketQuantile(begin.M, m, 0.5)
		f.HandlerP99Ms = bucketQuantile(begin.M, m, 0.99)
	}
	return f
}

// Phase is one phase's duration, operations and Redis calls.
type Phase struct {
	Name       string      `json:"name"`
	Seconds    float64     `json:"seconds"`
	Joins      int64       `json:"joins"`
	Heartbeats int64       `json:"heartbeats"`
	Patches    int64       `json:"patches"`
	Chats      int64       `json:"chats"`
	Leaves     int64       `json:"leaves"`
	Redis      *RedisDelta `json:"redis,omitempty"`
	// RoundTripsPerOp is Redis round trips over the phase's operations.
	RoundTripsPerOp float64 `json:"redis_round_trips_per_op,omitempty"`
}

// Report is the final result.
type Report struct {
	Date        string             `json:"date"`
	Targets     []string           `json:"targets"`
	Connections int                `json:"connections"`
	Held        int                `json:"connections_held"`
	Sources     int                `json:"source_addresses"`
	Rooms       int                `json:"rooms"`
	Config      map[string]any     `json:"config"`
	Phases      []Phase            `json:"phases"`
	Latency     map[string]Summary `json:"latency"`
	Rates       map[string]float64 `json:"steady_rates_per_second"`
	Events      map[string]int64   `json:"events"`
	Errors      map[string]int64   `json:"errors"`
	ErrorSample []string           `json:"error_examples,omitempty"`
	Skipped     map[string]int64   `json:"skipped"`
	Servers     []ServerFigures    `json:"servers"`
	BenchCPU    float64            `json:"bench_cpu_percent_steady"`
	Silence     map[string]any     `json:"silence,omitempty"`
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

type opCounts struct{ joins, beats, patches, chats, leaves int64 }

func (r *runner) counts() opCounts {
	return opCounts{r.joins.Load(), r.beats.Load(), r.patches.Load(), r.chats.Load(), r.leaves.Load()}
}

func (r *runner) redisStats() *RedisStats {
	if r.cfg.redisAddr == "" {
		return nil
	}
	s, err := readRedisStats(r.cfg.redisAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: redis INFO:", err)
	}
	return s
}

func phase(name string, t0, t1 time.Time, a, b opCounts, ra, rb *RedisStats) Phase {
	p := Phase{Name: name, Seconds: t1.Sub(t0).Seconds(), Joins: b.joins - a.joins, Heartbeats: b.beats - a.beats,
		Patches: b.patches - a.patches, Chats: b.chats - a.chats, Leaves: b.leaves - a.leaves, Redis: redisDelta(ra, rb)}
	if ops := p.Joins + p.Heartbeats + p.Patches + p.Chats + p.Leaves; p.Redis != nil && ops > 0 {
		p.RoundTripsPerOp = float64(p.Redis.RoundTrips) / float64(ops)
	}
	return p
}

// run performs one load run: ramp, steady phase, drain, leave.
func run(c *config) (*Report, error) {
	r := newRunner(c)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	base := scrapeAll(c.targets)
	for i, s := range base {
		if s == nil {
			return nil, fmt.Errorf("cannot read %s/metrics: is the server running?", c.targets[i])
		}
	}
	r.start = time.Now()
	stopLive := r.live(ctx)
	defer stopLive()

	// Ramp.
	r.phase.Store("ramp")
	t0, c0, rs0 := time.Now(), r.counts(), r.redisStats()
	r.ramp(ctx)
	t1, c1, rs1 := time.Now(), r.counts(), r.redisStats()

	// Steady phase.
	r.phase.Store("steady")
	begin := scrapeAll(c.targets)
	cpu0 := cpuSeconds()
	ev0 := r.evJoin.Load() + r.evUpdate.Load() + r.evLeave.Load()
	if ctx.Err() == nil {
		r.steady(ctx)
	}
	r.inflight.Wait()
	cpu1 := cpuSeconds()
	t2, c2, rs2 := time.Now(), r.counts(), r.redisStats()
	ev1 := r.evJoin.Load() + r.evUpdate.Load() + r.evLeave.Load()
	end := scrapeAll(c.targets)
	steadySecs := t2.Sub(t1).Seconds()

	// Drain late events, then freeze the event counts.
	r.phase.Store("drain")
	select {
	case <-ctx.Done():
	case <-time.After(c.drain):
	}
	r.stopEvents.Store(true)
	held := r.held()
	expected, received, gaps := r.delivery()

	// Leave and close.
	r.phase.Store("leave")
	t3, c3, rs3 := time.Now(), r.counts(), r.redisStats()
	r.leaveAll()
	t4, c4, rs4 := time.Now(), r.counts(), r.redisStats()
	r.closeAll()
	stopLive()

	rep := &Report{
		Date: time.Now().UTC().Format(time.RFC3339), Targets: c.targets, Connections: len(r.conns), Held: held,
		Sources: r.sourceCount(), Rooms: c.rooms,
		Config: map[string]any{"eio": c.eio, "rooms": c.rooms, "users_per_room": c.users, "conns_per_user": c.connsPerUser,
			"heartbeats_per_second": c.beatRate(), "patch_share": c.patchShare, "chat_per_second": c.chatRate,
			"ramp_s": c.ramp.Seconds(), "duration_s": c.duration.Seconds()},
		Phases: []Phase{phase("ramp (dial+join)", t0, t1, c0, c1, rs0, rs1), phase("steady", t1, t2, c1, c2, rs1, rs2),
			phase("leave", t3, t4, c3, c4, rs3, rs4)},
		Latency: map[string]Summary{"connect": r.connectH.Total.Summarize(), "join": r.joinH.Total.Summarize(),
			"heartbeat": r.hbH.Total.Summarize(), "patch": r.patchH.Total.Summarize(), "chat": r.chatH.Total.Summarize(),
			"leave": r.leaveH.Total.Summarize(), "event_delivery": r.eventH.Total.Summarize(),
			"chat_delivery": r.chatEventH.Total.Summarize()},
		Events: map[string]int64{"presence_expected": expected, "presence_received": received,
			"presence_missing": expected - received, "seq_gaps": gaps, "join": r.evJoin.Load(), "update": r.evUpdate.Load(),
			"leave": r.evLeave.Load(), "chat_expected": r.chatExpected.Load(), "chat_received": r.chatRecv.Load(),
			"patch_unchanged": r.unchanged.Load()},
		Skipped: map[string]int64{"busy": r.skipBusy.Load(), "max_inflight": r.skipInflight.Load()},
	}
	if steadySecs > 0 {
		rep.Rates = map[string]float64{"heartbeats": float64(c2.beats-c1.beats) / steadySecs,
			"patches": float64(c2.patches-c1.patches) / steadySecs, "chats": float64(c2.chats-c1.chats) / steadySecs,
			"presence_events_received": float64(ev1-ev0) / steadySecs}
		rep.BenchCPU = 100 * (cpu1 - cpu0) / steadySecs
	}
	r.errMu.Lock()
	rep.Errors, rep.ErrorSample = r.errs, r.examples
	r.errMu.Unlock()
	for i, t := range c.targets {
		rep.Servers = append(rep.Servers, serverFigures(t, base[i], begin[i], end[i]))
	}
	if c.silenceAt > 0 {
		var seen int64
		for _, bc := range r.conns {
			if bc.silent.Load() && bc.leaveSeen.Load() {
				seen++
			}
		}
		rep.Silence = map[string]any{"silenced": r.silenced.Load(), "expired_leaves_seen": seen,
			"last_heartbeat_to_leave": r.expireH.Total.Summarize()}
		rep.Latency["last_heartbeat_to_leave"] = r.expireH.Total.Summarize()
	}
	return rep, ctx.Err()
}

// live prints one progress line a second on stderr until the returned stop
// is called (it may be called more than once).
func (r *runner) live(ctx context.Context) (stop func()) {
	prev := r.counts()
	prevEv := r.evJoin.Load() + r.evUpdate.Load() + r.evLeave.Load()
	prevCPU, prevAt := cpuSeconds(), time.Now()
	var prevSrv []*serverSample
	var prevRedis *RedisStats
	return everySecond(ctx, func(now time.Time) {
		srv := scrapeAll(r.cfg.targets)
		rs := r.redisStats()
		cur := r.counts()
		ev := r.evJoin.Load() + r.evUpdate.Load() + r.evLeave.Load()
		cpu := cpuSeconds()
		secs := now.Sub(prevAt).Seconds()
		hbW, evW := r.hbH.Rotate(), r.eventH.Rotate()
		r.joinH.Rotate()
		r.patchH.Rotate()
		var b strings.Builder
		fmt.Fprintf(&b, "[%4.0fs %-6s] conns %d/%d | join/s %.0f | hb/s %.0f p50 %.2f p99 %.2f ms | patch/s %.0f | chat/s %.0f | ev/s %.0f p99 %.1f ms | err %d",
			now.Sub(r.start).Seconds(), r.phase.Load(), r.held(), len(r.conns),
			float64(cur.joins-prev.joins)/secs, float64(cur.beats-prev.beats)/secs,
			float64(hbW.Quantile(0.5))/1000, float64(hbW.Quantile(0.99))/1000,
			float64(cur.patches-prev.patches)/secs, float64(cur.chats-prev.chats)/secs,
			float64(ev-prevEv)/secs, float64(evW.Quantile(0.99))/1000, r.errTotal())
		if n := r.skipInflight.Load() + r.skipBusy.Load(); n > 0 {
			fmt.Fprintf(&b, " skipped %d", n)
		}
		for i, s := range srv {
			if s == nil {
				fmt.Fprintf(&b, " | srv%d ?", i)
				continue
			}
			fmt.Fprintf(&b, " | srv%d rss %.0fMiB gor %.0f", i, s.M["process_resident_memory_bytes"]/(1<<20), s.M["go_goroutines"])
			if prevSrv != nil && prevSrv[i] != nil {
				fmt.Fprintf(&b, " cpu %.0f%%", 100*(s.M["process_cpu_seconds_total"]-prevSrv[i].M["process_cpu_seconds_total"])/s.At.Sub(prevSrv[i].At).Seconds())
			}
		}
		if d := redisDelta(prevRedis, rs); d != nil {
			fmt.Fprintf(&b, " | redis cpu %.0f%% rt/s %.0f", d.CPUPercent, float64(d.RoundTrips)/d.Seconds)
		}
		fmt.Fprintf(&b, " | bench cpu %.0f%%", 100*(cpu-prevCPU)/secs)
		if !r.cfg.quiet {
			fmt.Fprintln(os.Stderr, b.String())
		}
		prev, prevEv, prevCPU, prevAt, prevSrv, prevRedis = cur, ev, cpu, now, srv, rs
	})
}

// everySecond calls f once a second, on a goroutine of its own, until ctx
// ends or the returned stop is called (it may be called more than once and
// waits for f to return).
func everySecond(ctx context.Context, f func(now time.Time)) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				f(now)
			}
		}
	}()
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func (rep *Report) writeJSON(w io.Writer) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func (rep *Report) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\nbench report %s: %d connections (%d held) in %d rooms over %d target(s), %d source address(es)\n",
		rep.Date, rep.Connections, rep.Held, rep.Rooms, len(rep.Targets), max(rep.Sources, 1))
	fmt.Fprintf(w, "config: %v\n\n", rep.Config)
	fmt.Fprintln(tw, "latency (ms)\tcount\tp50\tp90\tp99\tp99.9\tmax\tmean\t")
	names := make([]string, 0, len(rep.Latency))
	for k := range rep.Latency {
		names = append(names, k)
	}
	order := map[string]int{"connect": 0, "join": 1, "heartbeat": 2, "patch": 3, "chat": 4, "leave": 5,
		"event_delivery": 6, "chat_delivery": 7, "last_heartbeat_to_leave": 8}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	for _, k := range names {
		s := rep.Latency[k]
		if s.Count == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", k, s.Count, s.P50, s.P90, s.P99, s.P999, s.Max, s.Mean)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if rep.Rates != nil {
		fmt.Fprintf(w, "steady rates /s: heartbeats %.0f, patches %.0f, chats %.0f, presence events received %.0f\n",
			rep.Rates["heartbeats"], rep.Rates["patches"], rep.Rates["chats"], rep.Rates["presence_events_received"])
	}
	e := rep.Events
	fmt.Fprintf(w, "presence events: received %d / expected %d (missing %d, seq gaps %d; join %d update %d leave %d)\n",
		e["presence_received"], e["presence_expected"], e["presence_missing"], e["seq_gaps"], e["join"], e["update"], e["leave"])
	fmt.Fprintf(w, "chat messages: received %d / expected %d\n", e["chat_received"], e["chat_expected"])
	fmt.Fprintf(w, "errors: %v   skipped: %v\n", rep.Errors, rep.Skipped)
	for _, ex := range rep.ErrorSample {
		fmt.Fprintln(w, "  e.g.", ex)
	}
	fmt.Fprintln(w)
	for _, s := range rep.Servers {
		fmt.Fprintf(w, "server %s: sockets %.0f joined %.0f | RSS %s (baseline %s, %.1f KiB/conn) | heap %.1f KiB/conn, stacks %.1f KiB/conn | goroutines %.0f (baseline %.0f, %.2f/conn) | steady CPU %.0f%% | mean heartbeat batch %.1f | redis rtt mean %.2f ms | reaper runs %.0f | server-side heartbeat handling p50 <= %.1f ms, p99 <= %.1f ms | pub/sub %.0f msg/s, %.0f buckets\n",
			s.Target, s.Sockets, s.Joined, mib(s.RSSBytes), mib(s.RSSBaseline), s.RSSPerConn/1024, s.HeapPerConn/1024,
			s.StackPerConn/1024, s.Goroutines, s.GoroutinesBase, s.GoroutinesPer, s.CPUPercent, s.MeanBeatBatch,
			s.RedisRTTMeanMs, s.ReaperRunsSteady, s.HandlerP50Ms, s.HandlerP99Ms, s.PubSubPerSec, s.PubSubBuckets)
	}
	fmt.Fprintf(w, "bench CPU in steady phase: %.0f%%\n", rep.BenchCPU)
	for _, p := range rep.Phases {
		fmt.Fprintf(w, "phase %-17s %6.1fs  joins %d hb %d patches %d chats %d leaves %d", p.Name, p.Seconds,
			p.Joins, p.Heartbeats, p.Patches, p.Chats, p.Leaves)
		if p.Redis != nil {
			fmt.Fprintf(w, " | redis round trips %d (%.3f per op), cpu %.0f%% | %s", p.Redis.RoundTrips, p.RoundTripsPerOp,
				p.Redis.CPUPercent, p.Redis)
		}
		fmt.Fprintln(w)
	}
	if rep.Silence != nil {
		fmt.Fprintf(w, "silence: %v silenced, %v expired leaves seen\n", rep.Silence["silenced"], rep.Silence["expired_leaves_seen"])
	}
}

// problems lists what makes the run fail: in -smoke mode any error, missing
// event or connection; with -expire-within a late or missing expiry.
func (rep *Report) problems(c *config) []string {
	var p []string
	if c.smoke {
		if rep.Held != rep.Connections {
			p = append(p, fmt.Sprintf("%d of %d connections held", rep.Held, rep.Connections))
		}
		var n int64
		for _, v := range rep.Errors {
			n += v
		}
		if n > 0 {
			p = append(p, fmt.Sprintf("%d errors: %v", n, rep.Errors))
		}
		e := rep.Events
		if e["presence_missing"] != 0 || e["seq_gaps"] != 0 {
			p = append(p, fmt.Sprintf("presence events: %d missing, %d seq gaps", e["presence_missing"], e["seq_gaps"]))
		}
		if e["chat_received"] != e["chat_expected"] {
			p = append(p, fmt.Sprintf("chat: received %d of %d", e["chat_received"], e["chat_expected"]))
		}
		if rep.Latency["heartbeat"].Count == 0 || (c.patchShare > 0 && rep.Latency["patch"].Count == 0) {
			p = append(p, "no heartbeat or patch was acknowledged")
		}
		if rep.Skipped["busy"]+rep.Skipped["max_inflight"] > 0 {
			p = append(p, fmt.Sprintf("requests skipped: %v", rep.Skipped))
		}
	}
	if c.silenceAt > 0 && c.expireWithin > 0 {
		s := rep.Latency["last_heartbeat_to_leave"]
		if silenced := rep.Silence["silenced"].(int64); s.Count != silenced {
			p = append(p, fmt.Sprintf("expired leaves seen for %d of %d silenced connections", s.Count, silenced))
		}
		if s.Max > float64(c.expireWithin.Milliseconds()) {
			p = append(p, fmt.Sprintf("slowest expiry %.0f ms > %s", s.Max, c.expireWithin))
		}
	}
	return p
}

// observe opens no connection: it reports the Redis commands and the
// servers' reaper runs over c.observe (the reaper's cost per tick).
func observe(c *config) error {
	if c.redisAddr == "" {
		return fmt.Errorf("-observe needs -redis")
	}
	a, err := readRedisStats(c.redisAddr)
	if err != nil {
		return err
	}
	sa := scrapeAll(c.targets)
	time.Sleep(c.observe)
	b, err := readRedisStats(c.redisAddr)
	if err != nil {
		return err
	}
	sb := scrapeAll(c.targets)
	d := redisDelta(a, b)
	runs := 0.0
	for i := range sa {
		if sa[i] != nil && sb[i] != nil {
			runs += sb[i].M["rtm_reaper_runs_total"] - sa[i].M["rtm_reaper_runs_total"]
		}
	}
	out := map[string]any{"seconds": d.Seconds, "reaper_runs": runs, "redis": d}
	if runs > 0 {
		var usec int64
		for _, v := range d.UsecPer {
			usec += v
		}
		out["round_trips_per_run"] = float64(d.RoundTrips) / runs
		out["redis_usec_per_run"] = float64(usec) / runs
		calls := map[string]float64{}
		for k, v := range d.Calls {
			calls[k] = float64(v) / runs
		}
		out["calls_per_run"] = calls
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Printf("observed %.1fs: reaper runs %.0f, redis round trips %d, redis CPU %.2f%%\n", d.Seconds, runs, d.RoundTrips, d.CPUPercent)
	if runs > 0 {
		fmt.Printf("per reaper run: %.2f round trips, %.1f µs of Redis command time; calls: %v\n",
			out["round_trips_per_run"], out["redis_usec_per_run"], out["calls_per_run"])
	}
	fmt.Printf("calls: %s\n", d)
	return nil
}
