package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
)

// ErrClustered is returned by Reconfigure in a cluster, whose sources change only with a
// restart of its nodes: each source's log, lease and place are the cluster's.
var ErrClustered = errors.New("the sources of a cluster change only with a restart")

// table is the set of sources at one time. Run alone makes a new one (a reload); everyone
// else reads the one they loaded, which never changes.
type table struct {
	names   []string // sorted
	routers map[string]*router.Router
	runners map[string]*source.Runner
	// adapters are the sources' adapters, asked for what only some have (source.Counted).
	adapters map[string]source.Source
	backoffs map[string]source.Backoff
}

func newTable() *table {
	return &table{
		routers: make(map[string]*router.Router), runners: make(map[string]*source.Runner),
		adapters: make(map[string]source.Source), backoffs: make(map[string]source.Backoff),
	}
}

// t is the current table.
func (s *Supervisor) t() *table { return s.tab.Load() }

// set puts src's runner, adapter and backoff in t (its router is set apart).
func (t *table) set(src Source, log *slog.Logger) *source.Runner {
	run := source.NewRunner(src.Name, src.Type, src.Adapter, src.Backoff, src.Required, log)
	t.runners[src.Name] = run
	t.adapters[src.Name] = src.Adapter
	t.backoffs[src.Name] = src.Backoff
	return run
}

// clone is a copy of t to change before it replaces t.
func (t *table) clone() *table {
	c := newTable()
	c.names = slices.Clone(t.names)
	for n := range t.routers {
		c.routers[n], c.runners[n], c.adapters[n], c.backoffs[n] = t.routers[n], t.runners[n], t.adapters[n], t.backoffs[n]
	}
	return c
}

func (t *table) remove(name string) {
	t.names = slices.DeleteFunc(t.names, func(n string) bool { return n == name })
	delete(t.routers, name)
	delete(t.runners, name)
	delete(t.adapters, name)
	delete(t.backoffs, name)
}

// Change is what a reload changes in the sources.
type Change struct {
	// Add are new sources: each gets a router and starts.
	Add []Source
	// Remove are sources to stop: their clients get the status stopped; a stream that read
	// only removed sources ends (output.ErrSourceRemoved), the others go on with the rest.
	Remove []string
	// Replace are sources whose configuration changed: the old adapter stops (its clients
	// see the status stopped), the new one starts on the same router, so that the clients
	// stay subscribed and the sequence numbers and the history go on.
	Replace []Source
}

// reconfig is one Reconfigure for Run; done gets what apply returned.
type reconfig struct {
	change Change
	done   chan error
}

// Reconfigure makes Run apply c, and returns once it has: the removed and replaced sources
// have stopped, the added and replaced ones have started. It returns ErrClustered in a
// cluster, an error naming each source that could not be added (the rest of c applies), or
// ctx's error if ctx ends first, when Run has not taken c or is not running. Changes apply
// one at a time, in the order they come.
func (s *Supervisor) Reconfigure(ctx context.Context, c Change) error {
	if s.logs != nil {
		return ErrClustered
	}
	rc := reconfig{change: c, done: make(chan error, 1)}
	select {
	case s.reconf <- rc:
	case <-s.runDone:
		return errors.New("supervisor: not running")
	case <-ctx.Done():
		return ctx.Err()
	}
	// Run answers whatever ctx does: apply waits only for sources to stop.
	return <-rc.done
}

// running is what Run started alone: the goroutines of each source and router, and how to stop
// them. Only Run's goroutine uses it.
type running struct {
	ctx, routerCtx   context.Context
	routers, sources *sync.WaitGroup
	live             map[string]*live
}

// live is one source's goroutine and its router's.
type live struct {
	r          *router.Router
	stopSource context.CancelFunc
	sourceDone chan struct{}
	stopRouter context.CancelFunc
	routerDone chan struct{}
}

// start runs r, and runner into it, each under a context of its own below Run's.
func (rn *running) start(r *router.Router, runner *source.Runner) *live {
	l := &live{r: r, routerDone: make(chan struct{})}
	var rctx context.Context
	rctx, l.stopRouter = context.WithCancel(rn.routerCtx)
	rn.routers.Go(func() { defer close(l.routerDone); r.Run(rctx) }) // waited for by Run, after the sources
	rn.startSource(l, runner)
	return l
}

// startSource runs runner into l's router.
func (rn *running) startSource(l *live, runner *source.Runner) {
	l.sourceDone = make(chan struct{})
	var sctx context.Context
	sctx, l.stopSource = context.WithCancel(rn.ctx)
	done := l.sourceDone
	rn.sources.Go(func() { defer close(done); runner.Run(sctx, l.r.Emit, l.r.Notify) }) // waited for by Run
}

// apply carries out c from Run's goroutine: removals, then replacements, then additions.
func (s *Supervisor) apply(rn *running, c Change) error {
	t := s.t().clone()
	for _, name := range c.Remove {
		l, ok := rn.live[name]
		if !ok {
			continue
		}
		// New requests no longer find it; then its source stops, which tells its clients.
		t.remove(name)
		s.tab.Store(t.clone())
		l.stopSource()
		<-l.sourceDone
		s.detach(l.r, name, t)
		l.stopRouter()
		<-l.routerDone
		delete(rn.live, name)
		s.log.Info("source removed", "source", name)
	}
	for _, src := range c.Replace {
		l, ok := rn.live[src.Name]
		if !ok {
			continue
		}
		l.stopSource()
		<-l.sourceDone
		s.useStore(src)
		runner := t.set(src, s.log)
		s.tab.Store(t.clone())
		rn.startSource(l, runner)
		s.log.Info("source restarted with its new configuration", "source", src.Name, "type", src.Type)
	}
	var errs []error
	for _, src := range c.Add {
		if _, dup := t.routers[src.Name]; dup {
			errs = append(errs, fmt.Errorf("source %q: already running", src.Name))
			continue
		}
		r, err := s.newRouter(src)
		if err != nil {
			errs = append(errs, fmt.Errorf("source %q: %w", src.Name, err))
			continue
		}
		t.routers[src.Name] = r
		runner := t.set(src, s.log)
		t.names = append(t.names, src.Name)
		sort.Strings(t.names)
		s.tab.Store(t.clone())
		rn.live[src.Name] = rn.start(r, runner)
		s.log.Info("source added", "source", src.Name, "type", src.Type)
	}
	return errors.Join(errs...)
}

// detach takes every subscription off the router of the removed source name, before the
// router stops (which would end them all): a stream that reads other sources goes on with
// them; one that read only removed sources (none of them in t) ends.
func (s *Supervisor) detach(r *router.Router, name string, t *table) {
	s.mu.Lock()
	var subs []*Subscription
	for _, sub := range s.subs {
		if slices.Contains(sub.Sources, name) {
			subs = append(subs, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range subs {
		_ = r.Remove(context.Background(), sub.Out.ID())
		if !slices.ContainsFunc(sub.Sources, func(n string) bool { _, ok := t.routers[n]; return ok }) {
			sub.Out.Close(output.ErrSourceRemoved)
		}
	}
}
