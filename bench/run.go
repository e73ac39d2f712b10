package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"rtm/client"
)

// bconn is one generated connection.
type bconn struct {
	idx, room int
	user      string
	target    string
	c         *client.Conn
	connID    string
	joinSeq   int64
	observer  bool // first connection of its room: keeps heartbeating under -silence-at

	joined   atomic.Bool
	busy     atomic.Bool // a request is in flight
	silent   atomic.Bool
	closing  atomic.Bool
	epoch    atomic.Int64
	lastBeat atomic.Int64 // unix µs of the last acknowledged join or heartbeat

	// Written by the read loop only.
	lastSeq   atomic.Int64
	presRecv  atomic.Int64
	gaps      atomic.Int64
	leaveSeen atomic.Bool
}

// runner holds one run's state and counters.
type runner struct {
	cfg   *config
	conns []*bconn
	start time.Time

	activeMu sync.Mutex
	active   []*bconn // joined and heartbeating
	rr       atomic.Uint64
	sem      chan struct{}
	inflight sync.WaitGroup

	roomMax    []atomic.Int64 // highest presence seq seen in the room
	roomJoined []atomic.Int64 // joined connections of the room
	byConnID   sync.Map       // connId -> *bconn
	silencing  atomic.Bool
	stopEvents atomic.Bool // after the steady phase: stop counting

	connectH, joinH, hbH, patchH, chatH, leaveH *Windowed
	eventH, chatEventH, expireH                 *Windowed

	dialed, joins, beats, patches, chats, leaves atomic.Int64
	unchanged, skipBusy, skipInflight            atomic.Int64
	evJoin, evUpdate, evLeave, evOther, chatRecv atomic.Int64
	chatExpected, silenced                       atomic.Int64
	patchN                                       atomic.Int64

	errMu    sync.Mutex
	errs     map[string]int64
	examples []string

	phase atomic.Value // string
}

func newRunner(c *config) *runner {
	r := &runner{cfg: c, errs: map[string]int64{}, sem: make(chan struct{}, c.maxInflight),
		roomMax: make([]atomic.Int64, c.rooms), roomJoined: make([]atomic.Int64, c.rooms)}
	for _, h := range []**Windowed{&r.connectH, &r.joinH, &r.hbH, &r.patchH, &r.chatH, &r.leaveH,
		&r.eventH, &r.chatEventH, &r.expireH} {
		*h = NewWindowed()
	}
	r.phase.Store("start")
	n := c.total()
	r.conns = make([]*bconn, n)
	for i := range r.conns {
		room := i % c.rooms
		u := (i / c.rooms) % c.users
		r.conns[i] = &bconn{idx: i, room: room, user: fmt.Sprintf("u%d-%d", room, u),
			target: c.targets[i%len(c.targets)], observer: i < c.rooms}
	}
	return r
}

// errCode classifies a failure for the errors-by-code table.
func errCode(err error) string {
	var ae *client.AckError
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, client.ErrRefused):
		return "refused"
	case errors.Is(err, client.ErrClosed):
		return "closed"
	}
	return "other"
}

func (r *runner) fail(code string, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	r.errs[code]++
	if len(r.examples) < 8 && err != nil {
		r.examples = append(r.examples, code+": "+err.Error())
	}
}

func (r *runner) errTotal() int64 {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	var n int64
	for _, v := range r.errs {
		n += v
	}
	return n
}

// dialer returns the websocket dialer of source address k (nil: default
// source), never through a proxy.
func (r *runner) dialer(k int) *websocket.Dialer {
	nd := &net.Dialer{Timeout: r.cfg.timeout}
	if k >= 0 {
		base := net.ParseIP(r.cfg.sourceBase).To4()
		ip := make(net.IP, 4)
		copy(ip, base)
		ip[3] += byte(k)
		nd.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: r.cfg.timeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  2048,
	}
}

// sourceCount is how many source addresses the run uses (0: the default one).
func (r *runner) sourceCount() int {
	if r.cfg.sources > 0 {
		return r.cfg.sources
	}
	n := r.cfg.total()
	if n <= r.cfg.perSource {
		return 0
	}
	return (n + r.cfg.perSource - 1) / r.cfg.perSource
}

// onEvent counts and times one event received by bc.
func (r *runner) onEvent(bc *bconn, e client.Event) {
	if r.stopEvents.Load() || len(e.Args) == 0 {
		return
	}
	now := e.Received.UnixMicro()
	switch e.Name {
	case client.EventPresence:
		f, ok := scanPresence(e.Args[0])
		if !ok {
			r.fail("bad_event", fmt.Errorf("unreadable presence event %.200s", e.Args[0]))
			return
		}
		r.eventH.RecordMicros(now - f.ts*1000)
		switch f.typ {
		case "join":
			r.evJoin.Add(1)
		case "update":
			r.evUpdate.Add(1)
		case "leave":
			r.evLeave.Add(1)
		default:
			r.evOther.Add(1)
		}
		bc.presRecv.Add(1)
		if last := bc.lastSeq.Load(); last != 0 && f.seq != last+1 {
			bc.gaps.Add(1)
		}
		bc.lastSeq.Store(f.seq)
		for m := &r.roomMax[bc.room]; ; {
			cur := m.Load()
			if f.seq <= cur || m.CompareAndSwap(cur, f.seq) {
				break
			}
		}
		if f.typ == "leave" && r.silencing.Load() {
			if v, ok := r.byConnID.Load(f.connID); ok {
				if sc := v.(*bconn); sc.silent.Load() && sc.leaveSeen.CompareAndSwap(false, true) {
					r.expireH.RecordMicros(now - sc.lastBeat.Load())
				}
			}
		}
	case client.EventChat:
		if ts, ok := scanInt(string(e.Args[0]), `"ts":`, true); ok {
			r.chatEventH.RecordMicros(now - ts*1000)
		}
		r.chatRecv.Add(1)
	}
}

// connect dials and joins connection bc.
func (r *runner) connect(ctx context.Context, bc *bconn, d *websocket.Dialer) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	t0 := time.Now()
	c, err := client.Dial(dctx, bc.target, client.Options{Protocol: r.cfg.eio, Dialer: d, OnEvent: func(e client.Event) { r.onEvent(bc, e) }})
	if err != nil {
		code := errCode(err)
		if code == "other" || code == "timeout" {
			code = "dial"
		}
		r.fail(code, err)
		return
	}
	r.connectH.Record(time.Since(t0))
	r.dialed.Add(1)
	bc.c = c
	t1 := time.Now()
	ack, err := c.Join(dctx, client.JoinRequest{RoomID: fmt.Sprintf("r%d", bc.room), UserID: bc.user,
		State: map[string]any{"i": bc.idx}})
	if err != nil {
		r.fail(errCode(err), err)
		return
	}
	r.joinH.Record(time.Since(t1))
	r.joins.Add(1)
	bc.connID, bc.joinSeq = ack.Self.ConnID, ack.Snapshot.Seq
	bc.epoch.Store(ack.Self.Epoch)
	bc.lastBeat.Store(time.Now().UnixMicro())
	r.byConnID.Store(bc.connID, bc)
	bc.joined.Store(true)
	r.roomJoined[bc.room].Add(1)
	r.activeMu.Lock()
	r.active = append(r.active, bc)
	r.activeMu.Unlock()
}

// ramp opens every connection at an even pace over cfg.ramp.
func (r *runner) ramp(ctx context.Context) {
	n := len(r.conns)
	srcs := r.sourceCount()
	dialers := []*websocket.Dialer{r.dialer(-1)}
	if srcs > 0 {
		dialers = dialers[:0]
		for k := 0; k < srcs; k++ {
			dialers = append(dialers, r.dialer(k))
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(r.cfg.dialConc, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r.connect(ctx, r.conns[i], dialers[i%len(dialers)])
			}
		}()
	}
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if r.cfg.ramp > 0 {
			due := start.Add(time.Duration(float64(r.cfg.ramp) * float64(i) / float64(n)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		work <- i
	}
	close(work)
	wg.Wait()
}

// pick returns the next active connection, round-robin.
func (r *runner) pick() *bconn {
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	if len(r.active) == 0 {
		return nil
	}
	return r.active[r.rr.Add(1)%uint64(len(r.active))]
}

func (r *runner) activeCount() int {
	r.activeMu.Lock()
	defer r.activeMu.Unlock()
	return len(r.active)
}

// launch runs op on bc on its own goroutine, unless bc already has a request
// in flight or -max-inflight is reached (then the request is skipped and
// counted: the generator is open-loop, it never waits for the server).
func (r *runner) launch(bc *bconn, op func(context.Context, *bconn)) {
	if !bc.busy.CompareAndSwap(false, true) {
		r.skipBusy.Add(1)
		return
	}
	select {
	case r.sem <- struct{}{}:
	default:
		bc.busy.Store(false)
		r.skipInflight.Add(1)
		return
	}
	r.inflight.Add(1)
	go func() {
		defer func() { <-r.sem; bc.busy.Store(false); r.inflight.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.timeout)
		defer cancel()
		op(ctx, bc)
	}()
}

func (r *runner) heartbeat(patch bool) func(context.Context, *bconn) {
	return func(ctx context.Context, bc *bconn) {
		ep := bc.epoch.Load()
		req := client.HeartbeatRequest{Epoch: &ep}
		if patch {
			req.PatchState = map[string]any{"n": r.patchN.Add(1)}
		}
		t0 := time.Now()
		ack, err := bc.c.Heartbeat(ctx, req)
		d := time.Since(t0)
		if err != nil {
			if !bc.closing.Load() {
				r.fail(errCode(err), err)
			}
			return
		}
		bc.epoch.Store(ack.Epoch)
		bc.lastBeat.Store(time.Now().UnixMicro())
		if patch {
			r.patchH.Record(d)
			r.patches.Add(1)
			if !ack.Changed {
				r.unchanged.Add(1)
			}
		} else {
			r.hbH.Record(d)
			r.beats.Add(1)
		}
	}
}

func (r *runner) chat(ctx context.Context, bc *bconn) {
	t0 := time.Now()
	_, _, err := bc.c.Chat(ctx, "bench message "+strconv.Itoa(bc.idx))
	d := time.Since(t0)
	if err != nil {
		if !bc.closing.Load() {
			r.fail(errCode(err), err)
		}
		return
	}
	r.chatH.Record(d)
	r.chats.Add(1)
	r.chatExpected.Add(r.roomJoined[bc.room].Load())
}

// pace calls fire at rate() per second until ctx ends, catching up on ticks
// it missed.
func pace(ctx context.Context, rate func() float64, fire func()) {
	const tick = 2 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	due := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due += rate() * now.Sub(last).Seconds()
			last = now
			due = math.Min(due, rate()+1) // never more than a second of backlog
			for ; due >= 1; due-- {
				fire()
			}
		}
	}
}

// steady drives heartbeats, patches and chat for cfg.duration.
func (r *runner) steady(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.duration)
	defer cancel()
	total := float64(len(r.conns))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		acc := 0.0
		hb, pt := r.heartbeat(false), r.heartbeat(true)
		pace(ctx, func() float64 { return r.cfg.beatRate() * float64(r.activeCount()) / total }, func() {
			bc := r.pick()
			if bc == nil {
				return
			}
			acc += r.cfg.patchShare
			if acc >= 1 {
				acc--
				r.launch(bc, pt)
				return
			}
			r.launch(bc, hb)
		})
	}()
	go func() {
		defer wg.Done()
		if r.cfg.chatRate <= 0 || r.cfg.silenceAt > 0 {
			return
		}
		pace(ctx, func() float64 { return r.cfg.chatRate }, func() {
			if bc := r.pick(); bc != nil {
				r.launch(bc, r.chat)
			}
		})
	}()
	if r.cfg.silenceAt > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(r.cfg.silenceAt):
			r.silence()
		}
	}
	wg.Wait()
}

// silence stops the heartbeats of every active connection but the first of
// each room, which stays to receive the leave events.
func (r *runner) silence() {
	r.activeMu.Lock()
	keep := r.active[:0:0]
	for _, bc := range r.active {
		if bc.observer {
			keep = append(keep, bc)
		} else {
			bc.silent.Store(true)
			r.silenced.Add(1)
		}
	}
	r.active = keep
	r.activeMu.Unlock()
	r.silencing.Store(true)
	fmt.Fprintf(os.Stderr, "silenced %d connections; %d observers keep heartbeating\n", r.silenced.Load(), len(keep))
}

// leaveAll sends presence:leave on every joined connection (when cfg.leave).
func (r *runner) leaveAll() {
	r.eachConn(func(bc *bconn) {
		if !r.cfg.leave || !bc.joined.Load() || bc.silent.Load() || bc.c.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.timeout)
		t0 := time.Now()
		_, err := bc.c.Leave(ctx)
		cancel()
		if err != nil {
			r.fail(errCode(err), err)
			return
		}
		r.leaveH.Record(time.Since(t0))
		r.leaves.Add(1)
	})
}

// closeAll closes every connection.
func (r *runner) closeAll() {
	r.eachConn(func(bc *bconn) {
		bc.closing.Store(true) // its end is expected, not a failure
		bc.c.Close()
	})
}

// eachConn runs f on every dialled connection, dialConc at a time, and
// returns when all are done.
func (r *runner) eachConn(f func(*bconn)) {
	work := make(chan *bconn)
	var wg sync.WaitGroup
	for w := 0; w < r.cfg.dialConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bc := range work {
				f(bc)
			}
		}()
	}
	for _, bc := range r.conns {
		if bc.c != nil {
			work <- bc
		}
	}
	close(work)
	wg.Wait()
}

// held counts connections joined and still open.
func (r *runner) held() int {
	n := 0
	for _, bc := range r.conns {
		if bc.joined.Load() && bc.c.Err() == nil {
			n++
		}
	}
	return n
}

// delivery totals presence events received against those expected: every
// connection should receive each seq of its room from its own join's on, up
// to the last seq anyone in the room saw. Silenced connections are left out
// (they stop receiving at their own leave).
func (r *runner) delivery() (expected, received, gaps int64) {
	for _, bc := range r.conns {
		if !bc.joined.Load() || bc.silent.Load() {
			continue
		}
		if m := r.roomMax[bc.room].Load(); m >= bc.joinSeq {
			expected += m - bc.joinSeq + 1
		}
		received += bc.presRecv.Load()
		gaps += bc.gaps.Load()
	}
	return
}

// presenceFields are the parts of a presence:event the generator reads.
type presenceFields struct {
	typ, connID, reason string
	seq, ts             int64
}

// scanPresence reads type, seq, connId, ts and reason from a presence event
// without decoding it whole. The fields that precede "state" are taken at
// their first occurrence; ts and reason, which follow it, at their last (the
// generator's states have none of these keys).
func scanPresence(b []byte) (presenceFields, bool) {
	s := string(b)
	var f presenceFields
	var ok1, ok2, ok3 bool
	f.typ, ok1 = scanStr(s, `"type":"`, false)
	f.seq, ok2 = scanInt(s, `"seq":`, false)
	f.connID, _ = scanStr(s, `"connId":"`, false)
	f.reason, _ = scanStr(s, `"reason":"`, true)
	f.ts, ok3 = scanInt(s, `"ts":`, true)
	return f, ok1 && ok2 && ok3
}

func find(s, key string, last bool) int {
	if last {
		return strings.LastIndex(s, key)
	}
	return strings.Index(s, key)
}

// scanStr returns the string after key (which ends with an opening quote).
func scanStr(s, key string, last bool) (string, bool) {
	i := find(s, key, last)
	if i < 0 {
		return "", false
	}
	s = s[i+len(key):]
	j := strings.IndexByte(s, '"')
	if j < 0 {
		return "", false
	}
	return s[:j], true
}

// scanInt returns the integer after key.
func scanInt(s, key string, last bool) (int64, bool) {
	i := find(s, key, last)
	if i < 0 {
		return 0, false
	}
	s = s[i+len(key):]
	j := 0
	for j < len(s) && (s[j] >= '0' && s[j] <= '9' || (j == 0 && s[j] == '-')) {
		j++
	}
	n, err := strconv.ParseInt(s[:j], 10, 64)
	return n, err == nil
}
