package bench

import (
	"context"
	"fmt"
	"time"
)

// The servers of a client scenario run side by side, each with its own clients connected, and
// take turns: only one receives messages at a time, in slices that alternate between them. Other
// work on the machine then weighs on every server alike, instead of on whichever happened to
// run while it did; one server after the other made the comparison a coin toss here.

// contender is one server in a load scenario, with its clients and publisher.
type contender struct {
	t       *target
	rec     *recorder
	clients []*client
	pub     *publisher
	stopPub func() error

	rssPerConn float64
	acc        *phase // the fixed-rate measurement, accumulated over the slices
	usage      sliceUsage

	// ramp state
	rate    float64
	best    float64
	alive   bool
	retried bool
	results []Result
}

// sliceUsage is what the server and this process spent during measured slices.
type sliceUsage struct {
	elapsed, cpu, self time.Duration
	sched              schedHist // scheduling latencies recorded in the slices
}

func (u *sliceUsage) add(v sliceUsage) {
	u.elapsed += v.elapsed
	u.cpu += v.cpu
	u.self += v.self
	u.sched = u.sched.plus(v.sched)
}

// scratch is where a contender's clients record while it is not measured.
var scratch = newPhase()

// load runs fanout or broadcast: every server at once, in alternating slices.
func (r *runner) load(ctx context.Context, rep *Report) error {
	plan := r.plan()
	rep.columns = loadColumns
	var cs []*contender
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	for _, kind := range r.kinds() {
		c, err := r.contend(ctx, kind, plan)
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	var err error
	if r.opt.Ramp {
		err = r.rampAll(ctx, cs)
	} else {
		err = r.fixedAll(ctx, cs)
	}
	if err != nil {
		return err
	}
	best := map[string]float64{}
	for _, c := range cs {
		if perr := c.stopPub(); perr != nil {
			return fmt.Errorf("%s publisher: %w", c.t.kind, perr)
		}
		drain(ctx, c.rec, 5*time.Second)
		if len(c.results) == 0 {
			continue
		}
		last := &c.results[len(c.results)-1]
		last.Dropped = dropped(c.rec)
		if r.opt.Source == "demo" && c.t.kind == kindStreamux {
			if m, err := scrape(ctx, c.t.httpc, c.t.base+"/metrics", "streamux_source_dropped_total"); err == nil {
				last.Dropped = int64(m["streamux_source_dropped_total"])
			}
		}
		last.Disconnected = c.rec.closed.Load()
		c.results[0].RSSPerConnBytes = c.rssPerConn
		for i := range c.results {
			c.results[i].Clients = len(c.clients)
		}
		rep.Results = append(rep.Results, c.results...)
		best[c.t.kind] = c.best
	}
	r.compare(rep, best)
	if len(cs) > 1 {
		rep.Notes = append(rep.Notes, "the servers ran side by side, each with its own clients, and took turns receiving messages in alternating slices")
	}
	if r.opt.Source == "demo" {
		rep.Notes = append(rep.Notes, "demo source: latency from the event's time field (milliseconds); dropped from the server's streamux_source_dropped_total")
	} else {
		rep.Notes = append(rep.Notes, "dropped: messages published for a client that never reached it, over the whole run (on the last row of each server), counted by the clients")
	}
	if r.opt.Bare && r.opt.Source != "http" {
		rep.Notes = append(rep.Notes, "the bare loop takes only HTTP ingest; it was not measured with -source "+r.opt.Source)
	}
	return nil
}

// contend starts a server of kind, connects the plan's clients and a paused publisher.
func (r *runner) contend(ctx context.Context, kind string, plan loadPlan) (c *contender, err error) {
	t, err := r.start(ctx, kind, r.serverConfig())
	if err != nil {
		return nil, err
	}
	c = &contender{t: t, rec: newRecorder(), stopPub: func() error { return nil }, alive: true, rate: r.opt.Rate}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	c.rec.cur.Store(scratch)
	if err := waitHealthy(ctx, t); err != nil {
		return c, err
	}
	t.gc(ctx)
	_, rss0, _ := t.usage(ctx)
	r.prog.show("[%s %s] connecting %d clients", kind, r.scenario, len(plan.specs))
	if c.clients, err = dialAll(ctx, t.base, t.source, plan.specs, r.opt.Parallel, c.rec, r.rs); err != nil {
		return c, err
	}
	t.gc(ctx)
	_, rss1, _ := t.usage(ctx)
	c.rssPerConn = float64(rss1-rss0) / float64(len(c.clients))
	if c.pub, c.stopPub, err = r.startPublisher(ctx, t, c.rec, plan.fanTo, 0); err != nil {
		return c, err
	}
	return c, nil
}

// close ends the contender's publisher, clients and server.
func (c *contender) close() {
	_ = c.stopPub()
	closeAll(c.clients)
	c.clients = nil
	if c.t != nil {
		_ = c.t.stop()
		c.t = nil
	}
}

// slice publishes to c at rate: unmeasured for settle, then measured into ph for d. Then it
// pauses the publisher and waits for what is in flight.
func (r *runner) slice(ctx context.Context, c *contender, rate float64, settle, d time.Duration, ph *phase, label, profile string) (sliceUsage, error) {
	if c.pub != nil {
		c.pub.setRate(rate)
	}
	defer func() {
		c.rec.cur.Store(scratch)
		if c.pub != nil {
			c.pub.setRate(0)
		}
		drain(ctx, c.rec, 2*time.Second)
	}()
	if err := r.sleep(ctx, settle, nil); err != nil {
		return sliceUsage{}, err
	}
	t := c.t
	cpu0, _, _ := t.usage(ctx)
	self0, _, _ := procStat(0)
	sched0, _ := t.sched(ctx)
	c.rec.cur.Store(ph)
	start := time.Now()
	profDone := make(chan error, 1)
	if profile != "" {
		go func() { profDone <- t.profile(ctx, d, profile) }() // waited for below
	} else {
		profDone <- nil
	}
	name := t.kind + " " + r.scenario + " " + label
	err := r.sleep(ctx, d, func(el time.Duration) {
		cpu, _, _ := t.usage(ctx)
		secs := time.Since(start).Seconds()
		lat := ph.lat.summary()
		r.prog.show("[%s] %v/%v  published %s/s  delivered %s/s  p99 %s ms  server CPU %.0f%%",
			name, el.Round(time.Second), d, num(float64(ph.published.Load())/secs), num(float64(ph.delivered.Load())/secs),
			ms(round2(lat.p99)), 100*(cpu-cpu0).Seconds()/secs)
	})
	c.rec.cur.Store(scratch)
	u := sliceUsage{elapsed: time.Since(start)}
	cpu1, _, _ := t.usage(ctx)
	self1, _, _ := procStat(0)
	sched1, _ := t.sched(ctx)
	u.cpu, u.self = cpu1-cpu0, self1-self0
	u.sched = sched1.minus(sched0)
	perr := <-profDone
	if err != nil {
		return u, err
	}
	if perr != nil {
		return u, fmt.Errorf("cpu profile: %w", perr)
	}
	return u, nil
}

// result turns what a contender recorded in ph over u into a row.
func (r *runner) result(c *contender, ph *phase, u sliceUsage, rate float64, label string) Result {
	res := summarize(c.t.kind, ph, u.cpu, u.elapsed)
	res.Phase, res.Rate = label, rate
	_, res.RSSBytes, _ = c.t.usage(context.Background())
	if c.t.mode != "in-process" {
		res.setClientCPU(u.self, u.elapsed)
	}
	if p99, ok := u.sched.quantile(schedHist{}, 0.99); ok {
		p50, _ := u.sched.quantile(schedHist{}, 0.50)
		res.SchedP50ms, res.SchedP99ms = float64(p50.Microseconds())/1000, round2(p99)
	}
	return res
}

// fixedRounds is how many slices each server's -duration is cut into.
const fixedRounds = 3

// fixedAll measures every contender at -rate for -duration, in fixedRounds alternating slices.
func (r *runner) fixedAll(ctx context.Context, cs []*contender) error {
	o := r.opt
	d := max(o.Duration/fixedRounds, 500*time.Millisecond)
	for _, c := range cs {
		c.acc = newPhase()
	}
	for round := range fixedRounds {
		for _, c := range cs {
			settle := 500 * time.Millisecond
			if round == 0 {
				settle = max(o.Warmup, settle)
			}
			profile := ""
			if round == 0 {
				profile = r.profileFile(c.t.kind)
			}
			u, err := r.slice(ctx, c, o.Rate, settle, d, c.acc, fmt.Sprintf("%d/%d", round+1, fixedRounds), profile)
			if err != nil {
				return err
			}
			c.usage.add(u)
		}
	}
	for _, c := range cs {
		c.results = []Result{r.result(c, c.acc, c.usage, o.Rate, "")}
	}
	return nil
}

// rampAll raises each contender's rate by RampFactor a step at a time, the contenders taking
// turns, until a step fails twice in a row at the same rate (once may be another process
// taking the cores for a moment): its p99 passes P99, the publisher or the deliveries fall more
// than 5% behind, or clients are disconnected.
func (r *runner) rampAll(ctx context.Context, cs []*contender) error {
	o := r.opt
	settle := max(o.RampStep/4, 500*time.Millisecond)
	for step := 1; step <= 40; step++ {
		any := false
		for _, c := range cs {
			if !c.alive {
				continue
			}
			any = true
			ph := newPhase()
			closed0 := c.rec.closed.Load()
			u, err := r.slice(ctx, c, c.rate, settle, o.RampStep, ph, fmt.Sprintf("step %d", step), "")
			if err != nil {
				return err
			}
			res := r.result(c, ph, u, c.rate, fmt.Sprintf("step %d", step))
			why := rampFailure(o, res, ph, u, c.rate, c.rec.closed.Load() > closed0)
			switch {
			case why == "":
				res.Phase += " ✓"
				c.best, c.retried = c.rate, false
			case !c.retried && c.rec.closed.Load() == closed0:
				res.Phase += " ✗ " + why + ", again"
				c.retried = true
			default:
				res.Phase += " ✗ " + why
				c.alive = false
			}
			c.results = append(c.results, res)
			if why != "" {
				continue
			}
			if o.MaxRate > 0 && c.rate >= o.MaxRate {
				c.alive = false
				continue
			}
			c.rate *= o.RampFactor
			if o.MaxRate > 0 {
				c.rate = min(c.rate, o.MaxRate)
			}
		}
		if !any {
			return nil
		}
	}
	return nil
}

// rampFailure says why a ramp step failed, or "".
func rampFailure(o Options, res Result, ph *phase, u sliceUsage, rate float64, disconnected bool) string {
	exp, got := ph.expected.Load(), ph.delivered.Load()
	switch {
	case res.P99ms > float64(o.P99.Microseconds())/1000:
		return "p99 over " + o.P99.String()
	case o.Source != "demo" && float64(ph.published.Load()) < 0.95*rate*u.elapsed.Seconds():
		return "the publisher fell behind"
	case float64(got) < 0.95*float64(exp):
		return "deliveries fell behind"
	case disconnected:
		return "clients were disconnected"
	}
	return ""
}

// plus adds two histograms of the same buckets; an empty one is the identity.
func (h schedHist) plus(o schedHist) schedHist {
	switch {
	case len(h.Counts) == 0:
		return o
	case len(o.Counts) != len(h.Counts):
		return h
	}
	out := schedHist{Buckets: h.Buckets, Counts: make([]uint64, len(h.Counts))}
	for i := range out.Counts {
		out.Counts[i] = h.Counts[i] + o.Counts[i]
	}
	return out
}

// minus is what h recorded since earlier.
func (h schedHist) minus(earlier schedHist) schedHist {
	if len(earlier.Counts) != len(h.Counts) {
		return schedHist{}
	}
	out := schedHist{Buckets: h.Buckets, Counts: make([]uint64, len(h.Counts))}
	for i := range out.Counts {
		out.Counts[i] = h.Counts[i] - earlier.Counts[i]
	}
	return out
}
