package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations in microseconds in log-linear buckets: exact
// below 128 µs, then 64 sub-buckets per power of two, so a reported
// percentile is within 1/64 (1.6 %) of the true value. Max, min, count and
// sum are exact. Record is lock-free and safe for concurrent use.
type Histogram struct {
	counts [histBuckets]atomic.Int64
	count  atomic.Int64
	sum    atomic.Int64 // µs
	max    atomic.Int64 // µs
	min    atomic.Int64 // µs, +1 so that 0 means unset
}

const (
	histExact   = 128 // values below are their own bucket
	histSub     = 64  // sub-buckets per power of two above histExact
	histBuckets = histExact + 57*histSub
)

// bucketOf returns the bucket index of v (µs, >= 0).
func bucketOf(v int64) int {
	if v < histExact {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 7 // v>>shift is in [64, 127]
	return histExact + (shift-1)*histSub + int(v>>shift) - histSub
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < histExact {
		return int64(i), int64(i)
	}
	i -= histExact
	shift := i/histSub + 1
	m := int64(i%histSub + histSub)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) { h.RecordMicros(d.Microseconds()) }

// RecordMicros adds one value in microseconds; negative values count as 0.
func (h *Histogram) RecordMicros(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// Count returns the number of values recorded.
func (h *Histogram) Count() int64 { return h.count.Load() }

// Max returns the largest value recorded, in microseconds.
func (h *Histogram) Max() int64 { return h.max.Load() }

// Min returns the smallest value recorded, in microseconds (0 when empty).
func (h *Histogram) Min() int64 { return max(h.min.Load()-1, 0) }

// Mean returns the mean in microseconds (0 when empty).
func (h *Histogram) Mean() float64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the value (µs) at quantile q in [0, 1]: the middle of the
// bucket holding the ceil(q·n)-th smallest value, clamped to [min, max]. It
// is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.Min()), h.Max())
		}
	}
	return h.Max()
}

// Summary is a histogram's figures in milliseconds, for reports.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize returns the count, mean, p50, p90, p99, p99.9 and max.
func (h *Histogram) Summarize() Summary {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count: h.Count(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

// Windowed is a histogram over the whole run plus one over the current
// progress interval, which Rotate replaces with an empty one.
type Windowed struct {
	Total  Histogram
	window atomic.Pointer[Histogram]
}

// NewWindowed returns an empty Windowed histogram.
func NewWindowed() *Windowed {
	w := &Windowed{}
	w.window.Store(&Histogram{})
	return w
}

// Record adds d to both histograms.
func (w *Windowed) Record(d time.Duration) { w.RecordMicros(d.Microseconds()) }

// RecordMicros adds v (µs) to both histograms.
func (w *Windowed) RecordMicros(v int64) {
	w.Total.RecordMicros(v)
	w.window.Load().RecordMicros(v)
}

// Rotate returns the current interval's histogram and starts a new one.
func (w *Windowed) Rotate() *Histogram { return w.window.Swap(&Histogram{}) }
