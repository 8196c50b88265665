package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// runner is one run of one scenario.
type runner struct {
	opt      Options
	scenario string
	dir      string // temporary: the servers' configuration files
	prog     *progress
	rs       reactors // read every client
}

// Run runs scenario with opt, shows progress on stderr and prints the report on stdout.
func Run(ctx context.Context, scenario string, opt Options, stdout, stderr io.Writer) error {
	if !slices.Contains(Scenarios, scenario) {
		return fmt.Errorf("unknown scenario %q (one of %s)", scenario, strings.Join(Scenarios, ", "))
	}
	if err := opt.validate(scenario); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "streamux-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rs, err := newReactors(opt.ClientPing)
	if err != nil {
		return err
	}
	defer rs.close()
	r := &runner{opt: opt, scenario: scenario, dir: dir, prog: newProgress(stderr, opt.Quiet), rs: rs}
	rep, err := r.run(ctx)
	r.prog.done()
	if err != nil {
		return err
	}
	return rep.print(stdout, opt.JSON)
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	rep := &Report{Scenario: r.scenario, Command: strings.Join(r.opt.Args, " "), Machine: machine(), Mode: r.mode()}
	var err error
	switch r.scenario {
	case "fanout", "broadcast":
		err = r.load(ctx, rep)
	case "slow":
		err = r.slow(ctx, rep)
	case "idle":
		err = r.idle(ctx, rep)
	case "churn":
		err = r.churn(ctx, rep)
	case "match":
		rep.Mode = "in-process router, no network"
		err = r.match(ctx, rep)
	case "cluster":
		err = r.cluster(ctx, rep)
	case "sink":
		err = r.sink(ctx, rep)
	case "ingest":
		if f, ok := sourceIngests[r.opt.IngestVia]; ok {
			rep.Mode = "in-process supervisor and " + r.opt.IngestVia + " source, no clients"
			err = f(r, ctx, rep)
			break
		}
		if r.opt.IngestVia != "amqp" {
			rep.Mode = r.mode() + "; http source, no clients"
			err = r.ingestHTTP(ctx, rep)
			break
		}
		rep.Mode = "in-process supervisor and amqp source, no clients"
		err = r.ingest(ctx, rep)
	}
	return rep, err
}

func (r *runner) mode() string {
	switch {
	case r.opt.URL != "":
		return "url " + r.opt.URL
	case r.opt.InProcess:
		return "in-process (CPU and RSS are the whole process's, clients included)"
	}
	return "subprocess (streamux-bench server: CPU and RSS from /proc/PID)"
}

// kinds are the servers a client scenario measures, streamux first.
func (r *runner) kinds() []string {
	k := []string{kindStreamux}
	if r.opt.Bare && r.opt.Source == "http" {
		k = append(k, kindBare)
	}
	if r.opt.BareJoin && r.opt.Source == "http" {
		k = append(k, kindBareJoin)
	}
	return k
}

func (r *runner) serverConfig() serverConfig {
	return serverConfig{
		source: r.opt.Source, sourceName: r.opt.SourceName, demoRate: r.opt.Rate,
		amqpURL: r.opt.AMQPURL, exchange: fmt.Sprintf("streamux-bench-%d", os.Getpid()),
		queueEvents: r.opt.QueueEvents, maxBatch: r.opt.MaxBatch, writeDelay: r.opt.WriteDelay,
	}
}

// withServer starts a server of kind, runs f with it and stops it.
func (r *runner) withServer(ctx context.Context, kind string, f func(t *target) error) (err error) {
	t, err := r.start(ctx, kind, r.serverConfig())
	if err != nil {
		return err
	}
	defer func() {
		if serr := t.stop(); serr != nil && err == nil && ctx.Err() == nil {
			err = serr
		}
	}()
	if err := waitHealthy(ctx, t); err != nil {
		return err
	}
	return f(t)
}

func waitHealthy(ctx context.Context, t *target) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := t.get(ctx, t.base+"/healthz", nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s server at %s is not healthy: %v\n%s", t.kind, t.base, err, t.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sleep waits d, showing progress every second; it returns early when ctx is done.
func (r *runner) sleep(ctx context.Context, d time.Duration, show func(elapsed time.Duration)) error {
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end.C:
			return nil
		case <-tick.C:
			if show != nil {
				show(time.Since(start))
			}
		}
	}
}

// progress is the one status line on stderr: rewritten in place on a terminal, a line a second
// otherwise.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	quiet bool
	shown bool
	last  time.Time
}

func newProgress(w io.Writer, quiet bool) *progress {
	p := &progress{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) show(format string, args ...any) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// A line a second at most off a terminal, ten on one.
	every := time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf(format, args...)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

// errStopped reports a run cut short by its context.
var errStopped = errors.New("bench: stopped")
