package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamux/streamux/internal/source"
)

// collector reads the counters that routers and transports keep anyway, at scrape time, so that
// metrics cost nothing per message.
type collector struct {
	s *Server

	received, matched, delivered, dropped, evalErrs, slow, subs, state, conns, live *prometheus.Desc
}

func newRegistry(s *Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	src := []string{"source"}
	c := &collector{
		s:         s,
		received:  prometheus.NewDesc("streamux_source_received_total", "Messages read from the source.", src, nil),
		matched:   prometheus.NewDesc("streamux_source_matched_total", "Deliveries owed: one per message and matching subscription.", src, nil),
		delivered: prometheus.NewDesc("streamux_source_delivered_total", "Matching messages handed to a subscription's queue for writing.", src, nil),
		dropped:   prometheus.NewDesc("streamux_source_dropped_total", "Matching messages not delivered (slow consumers).", src, nil),
		evalErrs:  prometheus.NewDesc("streamux_predicate_errors_total", "Predicate evaluations that failed at run time (counted as no match).", src, nil),
		slow:      prometheus.NewDesc("streamux_slow_consumers_total", "Subscriptions disconnected for being slow.", src, nil),
		subs:      prometheus.NewDesc("streamux_source_subscriptions", "Subscriptions reading the source.", src, nil),
		state:     prometheus.NewDesc("streamux_source_up", "1 while the source is up.", src, nil),
		conns:     prometheus.NewDesc("streamux_connections", "Live client streams by transport.", []string{"transport"}, nil),
		live:      prometheus.NewDesc("streamux_subscriptions", "Live subscriptions.", nil, nil),
	}
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.matched, c.delivered, c.dropped, c.evalErrs, c.slow, c.subs, c.state, c.conns, c.live} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, si := range c.s.sup.Sources() {
		k := si.Counters
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(k.Received), si.Name)
		ch <- prometheus.MustNewConstMetric(c.matched, prometheus.CounterValue, float64(k.Matched), si.Name)
		ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(k.Delivered), si.Name)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(k.Dropped), si.Name)
		ch <- prometheus.MustNewConstMetric(c.evalErrs, prometheus.CounterValue, float64(k.EvalErrors), si.Name)
		ch <- prometheus.MustNewConstMetric(c.slow, prometheus.CounterValue, float64(k.SlowConsumers), si.Name)
		ch <- prometheus.MustNewConstMetric(c.subs, prometheus.GaugeValue, float64(k.Subscriptions), si.Name)
		up := 0.0
		if si.State == source.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, up, si.Name)
	}
	for i, name := range transportNames {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(c.s.conns[i].Load()), name)
	}
	ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(c.s.sup.Count()))
}
