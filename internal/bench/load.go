package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// loadPlan is what a client scenario asks of every server it measures: the same clients and
// the same messages.
type loadPlan struct {
	specs []clientSpec
	fanTo []uint64 // per key: how many measured clients each message of that key reaches
}

// plan builds the clients of fanout and idle (client i reads key k<i mod K>), broadcast and
// slow (everyone reads everything).
func (r *runner) plan() loadPlan {
	o := r.opt
	p := loadPlan{fanTo: make([]uint64, o.Keys)}
	for i := range o.Clients {
		sp := clientSpec{policy: o.Policy, batch: o.Batch}
		switch {
		case r.scenario != "fanout" && r.scenario != "idle":
			for k := range p.fanTo {
				p.fanTo[k]++
			}
		case o.Source == "demo":
			// The demo source's keys are only "even" and "odd"; its rich body has n.
			sp.where = fmt.Sprintf("body.n %% %d == %d", o.Keys, i%o.Keys)
		default:
			sp.where = fmt.Sprintf(`key == "k%d"`, i%o.Keys)
			p.fanTo[i%o.Keys]++
		}
		p.specs = append(p.specs, sp)
	}
	return p
}

// startPublisher starts publishing at rate to t (nothing for the demo source, which the server
// drives itself). stop stops it and waits for it.
func (r *runner) startPublisher(ctx context.Context, t *target, rec *recorder, fanTo []uint64, rate float64) (*publisher, func() error, error) {
	var s sink
	switch r.opt.Source {
	case "demo":
		return nil, func() error { return nil }, nil
	case "amqp":
		as, err := newAMQPSink(r.opt.AMQPURL, "")
		if err != nil {
			return nil, nil, err
		}
		as.exchange = r.serverConfig().exchange
		if err := as.ch.ExchangeDeclarePassive(as.exchange, "topic", false, false, false, false, nil); err != nil {
			as.close()
			return nil, nil, fmt.Errorf("amqp: streamux has not declared exchange %q: %w", as.exchange, err)
		}
		s = as
	default:
		s = r.httpSinkTo(t)
	}
	p, stop := r.runPublisher(ctx, s, rec, fanTo, rate)
	return p, stop, nil
}

// httpSinkTo is the sink that feeds t's http source: a request per batch, or with
// -ingest-stream one streaming request.
func (r *runner) httpSinkTo(t *target) sink {
	if r.opt.IngestStream {
		return newHTTPStreamSink(t.base, t.source)
	}
	return newHTTPSink(t.base, t.source)
}

// runPublisher starts publishing to s at rate, message i of key k counting fanTo[k] expected
// deliveries in rec. stop stops it, waits for it, closes s and returns the publisher's error.
func (r *runner) runPublisher(ctx context.Context, s sink, rec *recorder, fanTo []uint64, rate float64) (*publisher, func() error) {
	p := &publisher{sink: s, every: r.opt.PublishEvery, keys: len(fanTo), size: r.opt.Size, rec: rec, fanTo: func(k int) uint64 { return fanTo[k] }}
	p.setRate(rate)
	pctx, cancel := context.WithCancel(ctx)
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); err = p.run(pctx) }() // stop waits for it
	var once sync.Once
	stop := func() error {
		once.Do(func() {
			cancel()
			wg.Wait()
			s.close()
		})
		return err
	}
	return p, stop
}

// compare fills in streamux's share of the bare loop and the summary.
func (r *runner) compare(rep *Report, best map[string]float64) {
	var sx, bare *Result
	for i := range rep.Results {
		res := &rep.Results[i]
		switch res.Server {
		case kindStreamux:
			sx = res
		case kindBare:
			bare = res
		}
	}
	perMsg := 1.0
	if len(rep.Results) > 0 && rep.Results[0].Rate > 0 {
		perMsg = rep.Results[0].Delivered / rep.Results[0].Published
	}
	if r.opt.Ramp {
		for _, k := range r.kinds() {
			rep.Summary = append(rep.Summary, fmt.Sprintf("%-9s highest rate with p99 ≤ %v: %s msg/s published (≈ %s deliveries/s)",
				k, r.opt.P99, num(best[k]), num(best[k]*perMsg)))
		}
		if best[kindBare] > 0 {
			rep.Summary = append(rep.Summary, fmt.Sprintf("streamux held %.0f%% of the bare loop's rate (target: at least 80%%)",
				100*best[kindStreamux]/best[kindBare]))
		}
		return
	}
	if sx == nil {
		return
	}
	line := fmt.Sprintf("streamux: %s deliveries/s, %s µs of server CPU per delivery, %s deliveries per CPU-second",
		num(sx.Delivered), num(sx.CPUPerDeliveryUs), num(sx.DeliveriesPerCPUs))
	if sx.ClientCPUPerDeliveryUs > 0 && sx.CPUPerDeliveryUs > 0 {
		line += fmt.Sprintf("; the clients spent %s µs per delivery, %.2f× the server", num(sx.ClientCPUPerDeliveryUs), sx.ClientCPUPerDeliveryUs/sx.CPUPerDeliveryUs)
	}
	rep.Summary = append(rep.Summary, line)
	if bare != nil && bare.Delivered > 0 {
		sx.OfBare = 100 * sx.Delivered / bare.Delivered
		line := fmt.Sprintf("bare:     %s deliveries/s, %s µs of server CPU per delivery; streamux delivered %.0f%% of its rate",
			num(bare.Delivered), num(bare.CPUPerDeliveryUs), sx.OfBare)
		if bare.CPUPerDeliveryUs > 0 {
			line += fmt.Sprintf(" at %.2f× its CPU per delivery", sx.CPUPerDeliveryUs/bare.CPUPerDeliveryUs)
		}
		rep.Summary = append(rep.Summary, line)
	}
}

func dropped(rec *recorder) int64 {
	return max(int64(rec.expected.Load())-int64(rec.delivered.Load()), 0)
}

func (r *runner) profileFile(kind string) string {
	switch {
	case r.opt.CPUProfile == "":
		return ""
	case kind == kindStreamux:
		return r.opt.CPUProfile
	}
	return r.opt.CPUProfile + "." + kind
}

// measure measures one phase of d: it starts a new phase of rec, waits, and summarises it.
// extra, if set, is called every second and its text added to the progress line.
func (r *runner) measure(ctx context.Context, t *target, rec *recorder, d time.Duration, label, profile string, extra func() string) (Result, *phase, error) {
	rec.next()
	cpu0, _, _ := t.usage(ctx)
	self0, _, _ := procStat(0)
	sched0, _ := t.sched(ctx)
	start := time.Now()
	profDone := make(chan error, 1)
	if profile != "" {
		go func() { profDone <- t.profile(ctx, d, profile) }() // waited for below
	} else {
		profDone <- nil
	}
	name := t.kind + " " + r.scenario
	if label != "" {
		name += " " + label
	}
	err := r.sleep(ctx, d, func(el time.Duration) {
		ph := rec.cur.Load()
		secs := time.Since(ph.start).Seconds()
		cpu, _, _ := t.usage(ctx)
		lat := ph.lat.summary()
		line := fmt.Sprintf("[%s] %v/%v  published %s/s  delivered %s/s  p99 %s ms  server CPU %.0f%%",
			name, el.Round(time.Second), d, num(float64(ph.published.Load())/secs), num(float64(ph.delivered.Load())/secs),
			ms(round2(lat.p99)), 100*(cpu-cpu0).Seconds()/time.Since(start).Seconds())
		if extra != nil {
			line += "  " + extra()
		}
		r.prog.show("%s", line)
	})
	ph := rec.next()
	elapsed := time.Since(start)
	cpu1, rss, _ := t.usage(ctx)
	self1, _, _ := procStat(0)
	sched1, _ := t.sched(ctx)
	perr := <-profDone
	if err != nil {
		return Result{}, ph, err
	}
	if perr != nil {
		return Result{}, ph, fmt.Errorf("cpu profile: %w", perr)
	}
	res := summarize(t.kind, ph, cpu1-cpu0, elapsed)
	res.Phase, res.RSSBytes = label, rss
	if t.mode != "in-process" {
		res.setClientCPU(self1-self0, elapsed)
	}
	if p99, ok := sched1.quantile(sched0, 0.99); ok {
		p50, _ := sched1.quantile(sched0, 0.50)
		res.SchedP50ms, res.SchedP99ms = float64(p50.Microseconds())/1000, round2(p99)
	}
	return res, ph, nil
}

// setClientCPU records self, the bench process's own CPU (clients and publisher) over elapsed,
// and per delivery.
func (r *Result) setClientCPU(self, elapsed time.Duration) {
	r.ClientCPUPercent = 100 * self.Seconds() / elapsed.Seconds()
	if n := r.Delivered * elapsed.Seconds(); n > 0 {
		r.ClientCPUPerDeliveryUs = self.Seconds() * 1e6 / n
	}
}

// summarize turns a phase into a row.
func summarize(kind string, ph *phase, cpu, elapsed time.Duration) Result {
	secs := elapsed.Seconds()
	n := float64(ph.delivered.Load())
	lat := ph.lat.summary()
	res := Result{
		Server: kind, Published: float64(ph.published.Load()) / secs, Delivered: n / secs,
		P50ms: round2(lat.p50), P99ms: round2(lat.p99), MaxMs: round2(lat.max),
		CPUSeconds: cpu.Seconds(), CPUPercent: 100 * cpu.Seconds() / secs,
	}
	if n > 0 && cpu > 0 {
		res.CPUPerDeliveryUs = cpu.Seconds() * 1e6 / n
		res.DeliveriesPerCPUs = n / cpu.Seconds()
	}
	return res
}

// drain waits, at most max, until the clients have everything published for them or nothing
// more arrives for a second.
func drain(ctx context.Context, rec *recorder, max time.Duration) {
	deadline := time.Now().Add(max)
	last, changed := rec.delivered.Load(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		d := rec.delivered.Load()
		if d >= rec.expected.Load() {
			return
		}
		if d != last {
			last, changed = d, time.Now()
		} else if time.Since(changed) > time.Second {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
