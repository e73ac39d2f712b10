package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the node's Prometheus series, on a registry of its own (two
// nodes in one process do not collide). Every method is safe for concurrent
// use.
type metrics struct {
	reg        *prometheus.Registry
	acks       *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	events     *prometheus.CounterVec
	reaperRuns prometheus.Counter
	reaped     prometheus.Counter
	redisErrs  *prometheus.CounterVec
	redisRTT   prometheus.Histogram
	beatBatch  prometheus.Histogram
	slowDrops  prometheus.Counter
	refusals   *prometheus.CounterVec
	sheds      prometheus.Counter
	recoveries *prometheus.CounterVec
	replayed   prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	const ns = "rtm"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "acks_total",
			Help: "Acknowledgements sent, by event and code (ok or the error code)."}, []string{"event", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "handler_seconds",
			Help: "Time to handle a client event, by event.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)},
			[]string{"event"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "presence_events_total",
			Help: "Presence events emitted by this node's operations, by type."}, []string{"type"}),
		reaperRuns: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reaper_runs_total",
			Help: "Reaper ticks run by this node."}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reaper_removals_total",
			Help: "Connections removed by this node's reaper."}),
		redisErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "redis_errors_total",
			Help: "Redis operations that failed for lack of Redis, by operation."}, []string{"op"}),
		redisRTT: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "redis_roundtrip_seconds",
			Help: "Time of one Redis script round trip.", Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)}),
		beatBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "heartbeat_batch_size",
			Help: "Plain heartbeats refreshed per Redis round trip.", Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
		slowDrops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "slow_client_disconnects_total",
			Help: "Sockets disconnected because their outbound queue overflowed."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "handshakes_refused_total",
			Help: "Handshakes refused before reaching Socket.IO, by HTTP status."}, []string{"status"}),
		sheds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "backlog_sheds_total",
			Help: "Patches and chat messages answered rate_limited because the node's outbound queues were full."}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "recoveries_total",
			Help: "Joins and syncs that gave a position (since), by result: recovered from the room history, or fresh (a snapshot)."},
			[]string{"result"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "replayed_events_total",
			Help: "Events replayed from room histories to recovering clients."}),
	}
	m.reg.MustRegister(m.acks, m.latency, m.events, m.reaperRuns, m.reaped, m.redisErrs, m.redisRTT,
		m.beatBatch, m.slowDrops, m.refusals, m.sheds, m.recoveries, m.replayed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "sockets",
			Help: "Connected sockets on this node."}, func() float64 {
			return float64(s.eng.Len())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "joined_connections",
			Help: "Sockets on this node that hold a presence connection."}, func() float64 {
			return float64(s.joinedCount())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "rooms",
			Help: "Rooms with members on this node."}, func() float64 { return float64(s.hub.roomCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "outbound_queued_bytes",
			Help: "Bytes waiting in the sockets' outbound queues."}, func() float64 {
			return float64(s.eng.queued.Load())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "pubsub_messages_total",
			Help: "Messages received on the events channels."}, func() float64 {
			return float64(s.subs.received.Load())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "pubsub_buckets",
			Help: "Buckets whose events channel this node is subscribed to."}, func() float64 {
			return float64(s.subs.buckets())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "pubsub_up",
			Help: "1 when every bucket in use is subscribed."}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.redisSub {
				return 1
			}
			return 0
		}),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) handled(event, code string, d time.Duration) {
	m.acks.WithLabelValues(event, code).Inc()
	m.latency.WithLabelValues(event).Observe(d.Seconds())
}

func (m *metrics) event(typ string, n int) { m.events.WithLabelValues(typ).Add(float64(n)) }
func (m *metrics) reaperRun()              { m.reaperRuns.Inc() }
func (m *metrics) reaperRemoved(n int) {
	m.reaped.Add(float64(n))
	m.event("leave", n)
}
func (m *metrics) redisError(op string)           { m.redisErrs.WithLabelValues(op).Inc() }
func (m *metrics) redisRoundTrip(d time.Duration) { m.redisRTT.Observe(d.Seconds()) }
func (m *metrics) heartbeatBatch(n int)           { m.beatBatch.Observe(float64(n)) }
func (m *metrics) droppedSlow()                   { m.slowDrops.Inc() }
func (m *metrics) refused(status string)          { m.refusals.WithLabelValues(status).Inc() }
func (m *metrics) shed()                          { m.sheds.Inc() }

// recovery counts a join or sync that gave a position: recovered with n
// events replayed, or answered with a fresh snapshot.
func (m *metrics) recovery(recovered bool, n int) {
	if !recovered {
		m.recoveries.WithLabelValues("fresh").Inc()
		return
	}
	m.recoveries.WithLabelValues("recovered").Inc()
	m.replayed.Add(float64(n))
}

// joinedCount counts this node's sockets holding a presence connection.
func (s *Server) joinedCount() int { return s.presence.joinedCount(s.eng.Sockets()) }
