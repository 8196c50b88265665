package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamux/streamux/internal/source"
)

// metrics are what /metrics shows. Counters that the engine keeps anyway (per source, per
// subscription) are read at scrape time by collector, so they cost nothing per message; the
// transports feed the histograms and the written-events counter once per write, not per event.
type metrics struct {
	reg       *prometheus.Registry
	latency   prometheus.Histogram
	batch     prometheus.Histogram
	written   *prometheus.CounterVec
	streams   *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	transport [3]func(int, time.Time) // the pump's Written hook per transport
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamux_delivery_latency_seconds",
			Help:    "From the source receiving a message to its event written to a client socket (the oldest event of each write).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamux_write_events",
			Help:    "Events joined into one write: how deep client queues were when their writer drained them.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamux_written_events_total",
			Help: "Events written to client sockets, by transport.",
		}, []string{"transport"}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamux_streams_total",
			Help: "Client streams opened, by transport.",
		}, []string{"transport"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamux_rejected_requests_total",
			Help: "Stream requests refused before streaming, by error code.",
		}, []string{"code"}),
	}
	for i, name := range transportNames {
		written := m.written.WithLabelValues(name)
		m.transport[i] = func(n int, oldest time.Time) {
			written.Add(float64(n))
			m.batch.Observe(float64(n))
			if !oldest.IsZero() {
				m.latency.Observe(time.Since(oldest).Seconds())
			}
		}
		m.streams.WithLabelValues(name)
	}
	src := []string{"source"}
	c := &collector{
		s:        s,
		received: prometheus.NewDesc("streamux_source_received_total", "Messages read from the source.", src, nil),
		bytes:    prometheus.NewDesc("streamux_source_received_bytes_total", "Payload bytes read from the source.", src, nil),
		matched:  prometheus.NewDesc("streamux_source_matched_total", "Deliveries owed: one per message and matching subscription.", src, nil),
		queued:   prometheus.NewDesc("streamux_source_queued_total", "Matching messages handed to a subscription's queue for writing (streamux_written_events_total counts those written).", src, nil),
		dropped:  prometheus.NewDesc("streamux_source_dropped_total", "Matching messages not delivered because a queue was full (policy drop, or the message that cut a slow consumer).", src, nil),
		evalErrs: prometheus.NewDesc("streamux_predicate_errors_total", "Predicate evaluations that failed at run time (counted as no match).", src, nil),
		slow:     prometheus.NewDesc("streamux_slow_consumers_total", "Subscriptions disconnected for being slow.", src, nil),
		costly:   prometheus.NewDesc("streamux_predicate_too_costly_total", "Subscriptions cut because one evaluation of their predicate went over limits.predicate_max_cost.", src, nil),
		subs:     prometheus.NewDesc("streamux_source_subscriptions", "Subscriptions reading the source.", src, nil),
		state:    prometheus.NewDesc("streamux_source_state", "1 for the state the source is in.", []string{"source", "state"}, nil),
		up:       prometheus.NewDesc("streamux_source_up", "1 while the source is up.", src, nil),
		reconn:   prometheus.NewDesc("streamux_source_reconnects_total", "Times the source lost its connection and reconnected.", src, nil),
		age:      prometheus.NewDesc("streamux_source_last_message_age_seconds", "Seconds since the source's newest message (absent before the first).", src, nil),
		conns:    prometheus.NewDesc("streamux_connections", "Live client streams by transport.", []string{"transport"}, nil),
		live:     prometheus.NewDesc("streamux_subscriptions", "Live subscriptions.", nil, nil),
	}
	m.reg.MustRegister(c, m.latency, m.batch, m.written, m.streams, m.rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// collector reads the engine's own counters at scrape time.
type collector struct {
	s *Server

	received, bytes, matched, queued, dropped, evalErrs, slow, costly, subs, state, up, reconn, age, conns, live *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.bytes, c.matched, c.queued, c.dropped, c.evalErrs, c.slow, c.costly, c.subs, c.state, c.up, c.reconn, c.age, c.conns, c.live} {
		ch <- d
	}
}

var states = []source.State{source.Connecting, source.Up, source.Reconnecting, source.Failed, source.Stopped}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, si := range c.s.sup.Sources() {
		k, n := si.Counters, si.Name
		counter(c.received, k.Received, n)
		counter(c.bytes, k.Bytes, n)
		counter(c.matched, k.Matched, n)
		counter(c.queued, k.Queued, n)
		counter(c.dropped, k.Dropped, n)
		counter(c.evalErrs, k.EvalErrors, n)
		counter(c.slow, k.SlowConsumers, n)
		counter(c.costly, k.TooCostly, n)
		counter(c.reconn, si.Reconnect, n)
		gauge(c.subs, float64(k.Subscriptions), n)
		for _, st := range states {
			v := 0.0
			if si.State == st {
				v = 1
			}
			gauge(c.state, v, n, string(st))
		}
		up := 0.0
		if si.State == source.Up {
			up = 1
		}
		gauge(c.up, up, n)
		if !k.LastMessage.IsZero() {
			gauge(c.age, time.Since(k.LastMessage).Seconds(), n)
		}
	}
	for i, name := range transportNames {
		gauge(c.conns, float64(c.s.conns[i].Load()), name)
	}
	gauge(c.live, float64(c.s.sup.Count()))
}
