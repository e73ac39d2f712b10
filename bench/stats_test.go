package main

import (
	"math/rand"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketsCoverValues(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 4095, 4096, 1 << 20, 1<<40 + 12345, 1<<62 - 1} {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d is below the previous %d", v, i, prev)
		}
		prev = i
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d lands in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if v >= histExact && float64(hi-lo) > float64(lo)/histSub {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d", i, lo, hi, histSub)
		}
	}
	// Consecutive buckets tile the line without gaps.
	for i := 1; i < histBuckets; i++ {
		_, hi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != hi+1 {
			t.Fatalf("gap between bucket %d (hi %d) and %d (lo %d)", i-1, hi, i, lo)
		}
	}
}

func TestQuantilesMatchExact(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var h Histogram
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(r.ExpFloat64() * 2000) // µs, mean 2 ms
		h.RecordMicros(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if d := float64(got-want) / float64(max(want, 1)); d > 0.02 || d < -0.02 {
			t.Errorf("q%.3f: got %d µs, exact %d µs", q, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("max/min %d/%d, want %d/%d", h.Max(), h.Min(), vals[len(vals)-1], vals[0])
	}
	if h.Count() != int64(len(vals)) {
		t.Errorf("count %d", h.Count())
	}
}

func TestSmallAndEmpty(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram is not all zero")
	}
	for _, v := range []int64{5, 1, 3, 2, 4} {
		h.RecordMicros(v)
	}
	if got := h.Quantile(0.5); got != 3 {
		t.Errorf("median of 1..5 = %d", got)
	}
	if got := h.Quantile(1); got != 5 {
		t.Errorf("q1 = %d", got)
	}
	if got := h.Quantile(0); got != 1 {
		t.Errorf("q0 = %d", got)
	}
	h.RecordMicros(-7)
	if h.Min() != 0 {
		t.Errorf("negative value recorded as %d, want 0", h.Min())
	}
	s := h.Summarize()
	if s.Count != 6 || s.Max != 0.005 {
		t.Errorf("summary %+v", s)
	}
}

func TestWindowedConcurrent(t *testing.T) {
	w := NewWindowed()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				w.Record(time.Duration(i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if w.Total.Count() != 8000 || w.Total.Max() != 999 {
		t.Fatalf("total count %d max %d", w.Total.Count(), w.Total.Max())
	}
	if got := w.Rotate().Count(); got != 8000 {
		t.Fatalf("window count %d", got)
	}
	if got := w.Rotate().Count(); got != 0 {
		t.Fatalf("fresh window count %d", got)
	}
}

func TestScanEvent(t *testing.T) {
	ev := []byte(`{"type":"update","roomId":"r1","seq":42,"userId":"u","connId":"c","state":{"n":7},"epoch":3,"ts":1700000000123,"count":{"connections":2,"members":2}}`)
	f, ok := scanPresence(ev)
	if !ok || f.typ != "update" || f.seq != 42 || f.ts != 1700000000123 || f.connID != "c" {
		t.Fatalf("scan: %+v %v", f, ok)
	}
	lv := []byte(`{"type":"leave","roomId":"r1","seq":7,"userId":"u","connId":"abc","ts":5,"reason":"expired","userLeft":true,"count":{"connections":0,"members":0}}`)
	f, ok = scanPresence(lv)
	if !ok || f.typ != "leave" || f.reason != "expired" || f.seq != 7 || f.ts != 5 || f.connID != "abc" {
		t.Fatalf("scan leave: %+v %v", f, ok)
	}
	if _, ok := scanPresence([]byte(`{"type":"join"}`)); ok {
		t.Fatal("scan accepted an event without seq")
	}
	ts, ok := scanInt(`{"id":"x","ts":99}`, `"ts":`, true)
	if !ok || ts != 99 {
		t.Fatalf("scanInt %d %v", ts, ok)
	}
}
