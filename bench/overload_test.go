package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"rtm/client"
)

func TestAckOutcome(t *testing.T) {
	for name, tt := range map[string]struct {
		err          error
		want         string
		wantAnswered bool
	}{
		"ok":           {nil, "ok", true},
		"rate limited": {&client.AckError{Code: "rate_limited"}, "rate_limited", true},
		"wrapped code": {fmt.Errorf("heartbeat: %w", &client.AckError{Code: "internal"}), "internal", true},
		"timeout":      {context.DeadlineExceeded, outcomeLostTimeout, false},
		"conn ended":   {fmt.Errorf("%w: read: EOF", client.ErrClosed), outcomeLostClosed, false},
		"other":        {errors.New("json"), outcomeOther, false},
	} {
		got, answered := ackOutcome(tt.err)
		if got != tt.want || answered != tt.wantAnswered {
			t.Errorf("%s: ackOutcome = %q, %v; want %q, %v", name, got, answered, tt.want, tt.wantAnswered)
		}
	}
}

func TestTally(t *testing.T) {
	tl := newTally()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				tl.add([]string{"ok", "rate_limited", outcomeLostTimeout, outcomeLostClosed}[(g+i)%4])
			}
		}()
	}
	wg.Wait()
	want := map[string]int64{"ok": 200, "rate_limited": 200, outcomeLostTimeout: 200, outcomeLostClosed: 200}
	if got := tl.snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot = %v; want %v", got, want)
	}
	if got := tl.sum(nil); got != 800 {
		t.Errorf("sum = %d; want 800", got)
	}
	if got := tl.sum(isLost); got != 400 {
		t.Errorf("lost = %d; want 400", got)
	}
	snap := tl.snapshot()
	snap["ok"] = 0
	if tl.snapshot()["ok"] != 200 {
		t.Error("snapshot shares the tally's map")
	}
}

func TestOfferedLoad(t *testing.T) {
	c := &config{members: 1000, patchEvery: 500 * time.Millisecond}
	if got := c.patchInterval(); got != 500*time.Millisecond {
		t.Errorf("interval = %v; want 500ms", got)
	}
	// 500k deliveries/s with 1,000 members: 500 patches/s, one per member every 2 s.
	c.offered = 500_000
	if got := c.patchInterval(); got != 2*time.Second {
		t.Errorf("interval at 500k deliveries/s = %v; want 2s", got)
	}
	if got := perSecond(1500, 3*time.Second); got != 500 {
		t.Errorf("perSecond = %v; want 500", got)
	}
	if got := perSecond(1, 0); got != 0 {
		t.Errorf("perSecond over 0 s = %v; want 0", got)
	}
}

func TestRecoveryTime(t *testing.T) {
	const every = 10 * time.Millisecond
	// Probes fail until 5 have run: recovery is when the 6th started.
	stop := time.Now()
	var n int
	var passedAt time.Time
	got, ok := recoveryTime(context.Background(), stop, time.Minute, every, func(context.Context) bool {
		n++
		if n == 6 {
			passedAt = time.Now()
			return true
		}
		return false
	})
	if !ok || n != 6 {
		t.Fatalf("recoveryTime = %v, %v after %d probes; want a recovery at the 6th", got, ok, n)
	}
	if want := passedAt.Sub(stop); got > want || got < 5*every {
		t.Errorf("recovery %v; want at least %v (5 probe periods) and at most %v (the passing probe's start)", got, 5*every, want)
	}

	// A node that answers at once has recovered at 0.
	if got, ok := recoveryTime(context.Background(), time.Now(), time.Minute, every, func(context.Context) bool { return true }); !ok || got > every {
		t.Errorf("immediate recovery = %v, %v; want about 0", got, ok)
	}

	// Never: it gives up at the limit, and the probe's context ends there.
	const limit = 5 * every
	var ctxDeadline time.Time
	stop = time.Now()
	got, ok = recoveryTime(context.Background(), stop, limit, every, func(ctx context.Context) bool {
		ctxDeadline, _ = ctx.Deadline()
		return false
	})
	if ok || got < limit {
		t.Errorf("no recovery = %v, %v; want false after at least %v", got, ok, limit)
	}
	if !ctxDeadline.Equal(stop.Add(limit)) {
		t.Errorf("probe deadline %v; want stop+limit %v", ctxDeadline, stop.Add(limit))
	}
}

func TestOverloadChecks(t *testing.T) {
	good := OverloadReport{Members: 3, JoinsOK: 3, Acks: map[string]int64{"ok": 9, "rate_limited": 4},
		Latency: map[string]Summary{"event_delivery": {P99: 4000}}, Recovered: true}
	if got := good.check(); len(got) != 0 {
		t.Errorf("orderly run failed checks: %v", got)
	}
	bad := OverloadReport{Members: 3, JoinsOK: 2, JoinsFailed: map[string]int64{"unavailable": 1}, Disconnected: 1,
		Acks:     map[string]int64{"ok": 1, "internal": 2, "unavailable": 3, outcomeLostTimeout: 4, outcomeOther: 5},
		AcksLost: 4, Latency: map[string]Summary{"event_delivery": {P99: 24000}}, RecoveryMs: 60000}
	want := []string{
		"1 connections disconnected by the server",
		"2 acks internal",
		"2 of 3 members joined: map[unavailable:1]",
		"3 acks unavailable",
		"4 acks lost",
		"5 acks other",
		"event delivery p99 24000 ms > 5 s",
		"not recovered 60000 ms after the load stopped",
	}
	if got := bad.check(); !reflect.DeepEqual(got, want) {
		t.Errorf("checks =\n%q\nwant\n%q", got, want)
	}
}
