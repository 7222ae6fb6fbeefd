package edge

// Prometheus metrics, on a registry of the Server's own.

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	reg                *prometheus.Registry
	requests           *prometheus.CounterVec // by cache_status
	originFetches      prometheus.Counter
	bytesServed        *prometheus.CounterVec // by kind: content, chunk
	originFetchSeconds prometheus.Histogram
	http               http.Handler // serves reg

	// The children every request touches, looked up once.
	byStatus                   map[string]prometheus.Counter // requests by X-Cache status
	contentBytes, chunkBytesTo prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeswarm_edge_requests_total",
			Help: "Content requests by how the cache answered them (hit, miss, revalidated, stale, pass).",
		}, []string{"cache_status"}),
		originFetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeswarm_edge_origin_fetches_total",
			Help: "Requests sent to the origin, revalidations included.",
		}),
		bytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeswarm_edge_bytes_served_total",
			Help: "Body bytes sent to clients, by kind (content, chunk).",
		}, []string{"kind"}),
		originFetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgeswarm_edge_origin_fetch_seconds",
			Help:    "Time to fetch from the origin, body included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms … 262 s
		}),
	}
	m.reg.MustRegister(m.requests, m.originFetches, m.bytesServed, m.originFetchSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgeswarm_swarm_peers",
			Help: "Peers registered with this edge's swarm tracker.",
		}, func() float64 { return float64(s.tracker.Stats().Peers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgeswarm_edge_cache_bytes",
			Help: "Bytes of objects stored in the disk cache.",
		}, func() float64 { _, b := s.cache.usage(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgeswarm_edge_cache_objects",
			Help: "Objects stored in the disk cache.",
		}, func() float64 { n, _ := s.cache.usage(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edgeswarm_edge_lane_requests_total",
			Help: "Requests served by the HTTP/1.1 fast lane (the rest by net/http).",
		}, func() float64 { return float64(s.stats.laneRequests.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edgeswarm_edge_lane_handoffs_total",
			Help: "Connections the fast lane handed to net/http (a request it does not parse: a body, ranges and conditionals it does, HTTP/2, TLS, …).",
		}, func() float64 { return float64(s.stats.laneHandoffs.Load()) }),
	)
	// Pre-create the label values so dashboards see zeros, not gaps.
	m.byStatus = make(map[string]prometheus.Counter)
	for _, st := range []string{statusHit, statusMiss, statusRevalidated, statusStale, statusPass} {
		m.byStatus[st] = m.requests.WithLabelValues(lower(st))
	}
	s.usage.register(m.reg)
	m.contentBytes = m.bytesServed.WithLabelValues("content")
	m.chunkBytesTo = m.bytesServed.WithLabelValues("chunk")
	m.http = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// counters are the Server's plain counters behind Stats.
type counters struct {
	originFetches, cacheHits, cacheMisses, passes                   atomic.Int64
	manifestBuilds, chunkBytes, chunks, chunksRefused, contentBytes atomic.Int64
	laneRequests, laneHandoffs                                      atomic.Int64
}
