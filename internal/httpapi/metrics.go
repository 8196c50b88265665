package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamux/streamux/internal/buildinfo"
	"github.com/streamux/streamux/internal/sink"
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
		s:             s,
		received:      prometheus.NewDesc("streamux_source_received_total", "Messages read from the source.", src, nil),
		bytes:         prometheus.NewDesc("streamux_source_received_bytes_total", "Payload bytes read from the source.", src, nil),
		matched:       prometheus.NewDesc("streamux_source_matched_total", "Deliveries owed: one per message and matching subscription.", src, nil),
		queued:        prometheus.NewDesc("streamux_source_queued_total", "Matching messages handed to a subscription's queue for writing (streamux_written_events_total counts those written).", src, nil),
		dropped:       prometheus.NewDesc("streamux_source_dropped_total", "Matching messages not delivered because a queue was full (policy drop, or the message that cut a slow consumer).", src, nil),
		evalErrs:      prometheus.NewDesc("streamux_predicate_errors_total", "Predicate evaluations that failed at run time (counted as no match).", src, nil),
		slow:          prometheus.NewDesc("streamux_slow_consumers_total", "Subscriptions disconnected for being slow.", src, nil),
		costly:        prometheus.NewDesc("streamux_predicate_too_costly_total", "Subscriptions cut because one evaluation of their predicate went over limits.predicate_max_cost.", src, nil),
		subs:          prometheus.NewDesc("streamux_source_subscriptions", "Subscriptions reading the source.", src, nil),
		state:         prometheus.NewDesc("streamux_source_state", "1 for the state the source is in.", []string{"source", "state"}, nil),
		up:            prometheus.NewDesc("streamux_source_up", "1 while the source is up.", src, nil),
		reconn:        prometheus.NewDesc("streamux_source_reconnects_total", "Times the source lost its connection and reconnected.", src, nil),
		age:           prometheus.NewDesc("streamux_source_last_message_age_seconds", "Seconds since the source's newest message (absent before the first).", src, nil),
		conns:         prometheus.NewDesc("streamux_connections", "Live client streams by transport.", []string{"transport"}, nil),
		live:          prometheus.NewDesc("streamux_subscriptions", "Live subscriptions.", nil, nil),
		leader:        prometheus.NewDesc("streamux_source_leader", "In a cluster, 1 for the node that reads the source upstream (leader \"\": none).", []string{"source", "leader"}, nil),
		logFirst:      prometheus.NewDesc("streamux_source_log_first_seq", "In a cluster, the sequence of the oldest message in the source's log.", src, nil),
		logLast:       prometheus.NewDesc("streamux_source_log_last_seq", "In a cluster, the sequence of the newest message in the source's log.", src, nil),
		lag:           prometheus.NewDesc("streamux_source_log_lag", "In a cluster, messages of the source's log this node has not routed yet.", src, nil),
		sinkDelivered: prometheus.NewDesc("streamux_sink_delivered_total", "Events a sink's destination acknowledged.", []string{"sink"}, nil),
		sinkFailed:    prometheus.NewDesc("streamux_sink_failed_attempts_total", "Deliveries a sink's destination refused (each try).", []string{"sink"}, nil),
		sinkGaps:      prometheus.NewDesc("streamux_sink_gaps_total", "Messages a sink will never deliver: given up after retry.max_age, or gone from the history first.", []string{"sink"}, nil),
		sinkLag:       prometheus.NewDesc("streamux_sink_lag_messages", "Messages of its sources a sink has not got to yet.", []string{"sink"}, nil),
		sinkLagSec:    prometheus.NewDesc("streamux_sink_lag_seconds", "How long ago the oldest event of the batch a sink is delivering was received; 0 when caught up.", []string{"sink"}, nil),
		sinkState:     prometheus.NewDesc("streamux_sink_state", "1 for the state a sink is in (up, retrying, failed).", []string{"sink", "state"}, nil),
	}
	m.reg.MustRegister(c, m.latency, m.batch, m.written, m.streams, m.rejected, buildInfoGauge(buildinfo.Read()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// buildInfoGauge is streamux_build_info, always 1, whose labels say which build is running, in
// the form Prometheus's own *_build_info metrics take, so that a dashboard can join it to other
// series or show when a new version was rolled out.
func buildInfoGauge(bi buildinfo.Info) prometheus.Collector {
	revision := bi.Revision
	if revision != "" && bi.Modified {
		revision += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "streamux_build_info",
		Help: "Always 1; the labels say which build of streamux runs: its module version, the commit it was built from (suffixed -modified when the tree had uncommitted changes) and the Go toolchain.",
		ConstLabels: prometheus.Labels{
			"version":   bi.Version,
			"revision":  revision,
			"goversion": bi.GoVersion,
		},
	})
	g.Set(1)
	return g
}

// collector reads the engine's own counters at scrape time.
type collector struct {
	s *Server

	received, bytes, matched, queued, dropped, evalErrs, slow, costly, subs, state, up, reconn, age, conns, live *prometheus.Desc
	leader, logFirst, logLast, lag                                                                               *prometheus.Desc
	sinkDelivered, sinkFailed, sinkGaps, sinkLag, sinkLagSec, sinkState                                          *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.bytes, c.matched, c.queued, c.dropped, c.evalErrs, c.slow, c.costly, c.subs, c.state, c.up, c.reconn, c.age, c.conns, c.live, c.leader, c.logFirst, c.logLast, c.lag,
		c.sinkDelivered, c.sinkFailed, c.sinkGaps, c.sinkLag, c.sinkLagSec, c.sinkState} {
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
		if ci := si.ClusterInfo; ci != nil {
			if ci.Leased {
				gauge(c.leader, 1, n, ci.Leader)
			}
			if ci.LogError == "" {
				gauge(c.logFirst, float64(ci.LogFirstSeq), n)
				gauge(c.logLast, float64(ci.LogLastSeq), n)
				gauge(c.lag, float64(ci.Lag), n)
			}
		}
	}
	for i, name := range transportNames {
		gauge(c.conns, float64(c.s.conns[i].Load()), name)
	}
	if m := c.s.opt.Sinks; m != nil {
		for _, si := range m.Sinks() {
			counter(c.sinkDelivered, si.Delivered, si.Name)
			counter(c.sinkFailed, si.Failed, si.Name)
			counter(c.sinkGaps, si.Gaps, si.Name)
			gauge(c.sinkLag, float64(si.Lag), si.Name)
			gauge(c.sinkLagSec, si.LagSeconds, si.Name)
			for _, st := range []string{sink.StateUp, sink.StateRetrying, sink.StateFailed} {
				v := 0.0
				if si.State == st {
					v = 1
				}
				gauge(c.sinkState, v, si.Name, st)
			}
		}
	}
	gauge(c.live, float64(c.s.sup.Count()))
}
