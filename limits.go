package main

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"
)

// Rate is a token bucket: PerSecond sustained, Burst at once. A zero
// PerSecond means unlimited.
type Rate struct {
	PerSecond float64
	Burst     int
}

// RateLimits are the per-socket limits by class of event.
type RateLimits struct {
	Heartbeat Rate // plain presence:heartbeat
	Patch     Rate // presence:heartbeat with patchState
	Chat      Rate // chat:message
	Other     Rate // every other event (join, sync, leave, module events)
}

// DefaultRateLimits returns limits far above what a well-behaved client sends.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		Heartbeat: Rate{PerSecond: 5, Burst: 20},
		Patch:     Rate{PerSecond: 20, Burst: 40},
		Chat:      Rate{PerSecond: 10, Burst: 20},
		Other:     Rate{PerSecond: 20, Burst: 40},
	}
}

// limits holds one socket's buckets. Handlers of one socket run one at a
// time, but the mutex keeps it safe regardless.
type limits struct {
	cfg RateLimits

	mu      sync.Mutex // guards the following field
	buckets [4]bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimits(cfg RateLimits) *limits { return &limits{cfg: cfg} }

// The classes of events, each with its rate limit.
const (
	classHeartbeat = iota
	classPatch
	classChat
	classOther
)

// eventClass returns the class of an event: patches and chat are the ones
// whose events fan out to a room.
func eventClass(event string, payload json.RawMessage) int {
	switch {
	case event == "presence:heartbeat" && bytes.Contains(payload, []byte(`"patchState"`)):
		return classPatch
	case event == "presence:heartbeat":
		return classHeartbeat
	case event == "chat:message":
		return classChat
	}
	return classOther
}

// allow takes a token from the bucket of class (eventClass) and reports
// whether there was one.
func (l *limits) allow(class int) bool {
	return l.allowAt(class, time.Now())
}

// allowAt is allow at time now: a bucket refills at PerSecond tokens a second
// since its last use, up to Burst, and starts full.
func (l *limits) allowAt(class int, now time.Time) bool {
	r := [...]Rate{classHeartbeat: l.cfg.Heartbeat, classPatch: l.cfg.Patch, classChat: l.cfg.Chat,
		classOther: l.cfg.Other}[class]
	if r.PerSecond <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &l.buckets[class]
	if b.last.IsZero() {
		b.tokens = float64(max(r.Burst, 1))
	} else {
		b.tokens = min(float64(max(r.Burst, 1)), b.tokens+now.Sub(b.last).Seconds()*r.PerSecond)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
