// Package supervisor owns the routers and their sources, creates an output for each client
// stream, registers it with every router the client reads, and removes it from all of them when
// it ends.
//
// Concurrency: Run starts one goroutine per router and one per source and waits for them all.
// Routers outlive their sources: Run stops the sources, waits for them, and only then stops the
// routers, so that every message a source emitted is routed and its last state (stopped) reaches
// the clients.
// Subscribe, the Subscription methods and the listing methods are safe from any goroutine; the
// registry of live subscriptions is guarded by a mutex that is taken on subscribe and
// unsubscribe only, never per message.
package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// ErrUnknownSource is returned by Subscribe for a source that is not configured.
var ErrUnknownSource = errors.New("unknown source")

// ErrClosed is returned by Subscribe once Shutdown has begun.
var ErrClosed = errors.New("shutting down")

// Source is one configured source: its adapter and how to run it.
type Source struct {
	Name     string
	Type     string
	Adapter  source.Source
	Backoff  source.Backoff
	Required bool
}

// Options configure a Supervisor. Zero values take the defaults.
type Options struct {
	// History bounds what each router keeps.
	History router.History
	// Queue bounds each subscription's queue.
	Queue output.Limits
	// Data, if set, keeps each source's sequence numbers across runs, so that an id never
	// names two messages; nil numbers every source from 1 in every run.
	Data *sequence.Dir
	Log  *slog.Logger
}

// Supervisor runs the sources and routers and keeps the live subscriptions.
type Supervisor struct {
	opt     Options
	log     *slog.Logger
	names   []string // sorted
	routers map[string]*router.Router
	runners map[string]*source.Runner
	// adapters are the sources' adapters, asked for what only some have (source.Counted).
	adapters map[string]source.Source

	mu     sync.Mutex
	subs   map[uint64]*Subscription
	nextID uint64
	closed bool
	idle   chan struct{} // closed when closed && len(subs) == 0
}

// New returns a supervisor for the sources; names must be unique.
func New(sources []Source, opt Options) (*Supervisor, error) {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	s := &Supervisor{
		opt: opt, log: opt.Log,
		routers: make(map[string]*router.Router), runners: make(map[string]*source.Runner),
		adapters: make(map[string]source.Source), subs: make(map[uint64]*Subscription), idle: make(chan struct{}),
	}
	for _, src := range sources {
		if _, dup := s.routers[src.Name]; dup {
			return nil, fmt.Errorf("supervisor: source %q configured twice", src.Name)
		}
		s.names = append(s.names, src.Name)
		r := router.New(src.Name, opt.History, opt.Log)
		if opt.Data != nil {
			c, err := opt.Data.Counter(src.Name)
			if err != nil {
				return nil, fmt.Errorf("supervisor: %w", err)
			}
			r.Persist(c)
		}
		s.routers[src.Name] = r
		s.runners[src.Name] = source.NewRunner(src.Name, src.Type, src.Adapter, src.Backoff, src.Required, opt.Log)
		s.adapters[src.Name] = src.Adapter
	}
	sort.Strings(s.names)
	return s, nil
}

// Run runs every router and source until ctx is done, then stops them: first the sources,
// which it waits for, then the routers. A router stops only once no source can emit to it any
// more, so it routes what its source emitted up to the end (a router also routes every message
// it accepted before it stops, whoever stops it), and the source's last state change reaches the
// clients. Run returns nil once every goroutine it started has returned.
func (s *Supervisor) Run(ctx context.Context) error {
	// The routers' context is not ctx: it ends after the sources have returned.
	routerCtx, stopRouters := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouters()
	var routers, sources sync.WaitGroup
	for _, name := range s.names {
		r, run := s.routers[name], s.runners[name]
		routers.Go(func() { r.Run(routerCtx) })               // waited for below, after the sources
		sources.Go(func() { run.Run(ctx, r.Emit, r.Notify) }) // waited for below
	}
	<-ctx.Done()
	sources.Wait()
	stopRouters()
	routers.Wait()
	return nil
}

// Names returns the configured source names, sorted.
func (s *Supervisor) Names() []string { return s.names }

// Adapter returns the adapter of source name, nil if there is none, to be asked for what only
// some adapters do (source.Publisher).
func (s *Supervisor) Adapter(name string) source.Source { return s.adapters[name] }

// Has reports whether name is a configured source.
func (s *Supervisor) Has(name string) bool { _, ok := s.routers[name]; return ok }

// Request describes a new subscription.
type Request struct {
	// Sources to read; every one must exist. Empty means all.
	Sources   []string
	Predicate *predicate.Predicate
	Policy    output.Policy
	// From holds, per source, the sequence number the client last saw; sources not in it
	// start live.
	From      map[string]uint64
	Transport string
	Remote    string
	// Queue overrides the supervisor's queue limits where non-zero.
	Queue output.Limits
}

// Subscription is a live client stream. Its creator owns it and must call Close.
type Subscription struct {
	Out     *output.Output
	Backlog []*stream.Event // history to send before live events, filtered, gaps first
	// Positions holds, per source, where the stream stands until it delivers an event of it:
	// just before its backlog, or the newest sequence number when the stream began.
	Positions map[string]uint64
	Sources   []string
	Predicate *predicate.Predicate
	Transport string
	Remote    string
	Started   time.Time

	sup  *Supervisor
	once sync.Once
}

// Subscribe creates the output and registers it with every router the client reads.
func (s *Supervisor) Subscribe(ctx context.Context, req Request) (*Subscription, error) {
	names := req.Sources
	if len(names) == 0 {
		names = s.names
	}
	for _, n := range names {
		if !s.Has(n) {
			return nil, fmt.Errorf("%w %q", ErrUnknownSource, n)
		}
	}
	names = dedupe(names)
	q := req.Queue
	if q.Events == 0 {
		q.Events = s.opt.Queue.Events
	}
	if q.Bytes == 0 {
		q.Bytes = s.opt.Queue.Bytes
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.nextID++
	sub := &Subscription{
		Out: output.New(s.nextID, req.Policy, q), Sources: names, Predicate: req.Predicate,
		Transport: req.Transport, Remote: req.Remote, Started: time.Now(), sup: s,
	}
	s.subs[sub.Out.ID()] = sub
	s.mu.Unlock()

	// Sources named in From resume from their ids; when some are named, the others resume
	// from the time of the earliest named message (the client saw no event of them), so a
	// multi-source stream loses nothing even when the client knows only some positions.
	var since time.Time
	backlogs := make([]router.Backlog, len(names))
	sub.Positions = make(map[string]uint64, len(names))
	add := func(i int, from router.Resume) error {
		n := names[i]
		b, err := s.routers[n].Add(ctx, sub.Out, req.Predicate, from)
		if err != nil {
			if errors.Is(err, router.ErrStopped) {
				return ErrClosed
			}
			return fmt.Errorf("subscribe to %q: %w", n, err)
		}
		backlogs[i] = b
		// Until it delivers an event of n, the stream stands just before its backlog.
		sub.Positions[n] = b.Last
		if len(b.Events) > 0 {
			sub.Positions[n] = b.Events[0].Seq() - 1
		}
		return nil
	}
	for i, n := range names {
		if from, ok := req.From[n]; ok {
			if err := add(i, router.Resume{After: from, Set: true}); err != nil {
				sub.Close()
				return nil, err
			}
			if t := backlogs[i].ResumeTime; !t.IsZero() && (since.IsZero() || t.Before(since)) {
				since = t
			}
		}
	}
	for i, n := range names {
		if _, ok := req.From[n]; !ok {
			if err := add(i, router.Resume{Since: since}); err != nil {
				sub.Close()
				return nil, err
			}
		}
	}
	// in is this replay's own; what it decodes of a message is valid until the next Reset,
	// and only a bool leaves it.
	var in predicate.Input
replay:
	for i, n := range names {
		b := backlogs[i]
		switch {
		case b.Unknown:
			sub.Backlog = append(sub.Backlog, stream.NewGap(n, b.Missed, stream.GapUnknownID))
		case b.Restart:
			sub.Backlog = append(sub.Backlog, stream.NewGap(n, b.Missed, stream.GapRestart))
		case b.Missed > 0:
			sub.Backlog = append(sub.Backlog, stream.NewGap(n, b.Missed, stream.GapHistory))
		}
		for _, ev := range b.Events {
			ok, err := matches(req.Predicate, &in, ev.Msg)
			if req.Predicate != nil && req.Predicate.Measured() {
				sub.Out.NoteCost(in.Cost())
			}
			if errors.Is(err, predicate.ErrTooCostly) {
				// As a router cuts it on a live message: the backlog before this message
				// is sent, then the stream ends.
				sub.Out.Close(output.ErrTooCostly)
				s.routers[n].CountTooCostly()
				break replay
			}
			if ok {
				sub.Backlog = append(sub.Backlog, ev)
			}
		}
	}
	s.log.Info("subscription opened", "id", sub.Out.ID(), "remote", sub.Remote, "transport", sub.Transport,
		"sources", names, "predicate_hash", predicateHash(req.Predicate), "policy", req.Policy.String(), "backlog", len(sub.Backlog))
	return sub, nil
}

// matches reports whether m matches p; the error is Match's, for ErrTooCostly.
func matches(p *predicate.Predicate, in *predicate.Input, m *stream.Message) (bool, error) {
	if p == nil || p.MatchesAll() {
		return true, nil
	}
	in.Reset(m)
	return p.Match(in)
}

// Close ends the subscription, if it has not ended, and removes it from every router and from
// the registry. When it returns, nothing in the server refers to it. Safe to call many times.
func (sub *Subscription) Close() {
	sub.once.Do(func() {
		sub.Out.Close(output.ErrClientGone)
		s := sub.sup
		for _, n := range sub.Sources {
			// Removal from a stopped router is a no-op; it holds nothing.
			_ = s.routers[n].Remove(context.Background(), sub.Out.ID())
		}
		s.mu.Lock()
		delete(s.subs, sub.Out.ID())
		if s.closed && len(s.subs) == 0 {
			close(s.idle)
		}
		s.mu.Unlock()
		c := sub.Out.Counters()
		s.log.Info("subscription closed", "id", sub.Out.ID(), "remote", sub.Remote, "predicate_hash", predicateHash(sub.Predicate), "reason", sub.Out.Err(),
			"delivered", c.Delivered, "dropped", c.Dropped, "predicate_errors", c.EvalErrors, "predicate_cost", c.EvalCost)
	})
}

// Kick ends the subscription id; it reports false when there is none.
func (s *Supervisor) Kick(id uint64) bool {
	s.mu.Lock()
	sub, ok := s.subs[id]
	s.mu.Unlock()
	if ok {
		sub.Out.Close(output.ErrKicked)
	}
	return ok
}

// Shutdown refuses new subscriptions, ends every live one with output.ErrShutdown and waits,
// until ctx is done, for their owners to close them.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if len(s.subs) == 0 {
			close(s.idle)
		}
	}
	for _, sub := range s.subs {
		sub.Out.Close(output.ErrShutdown)
	}
	s.mu.Unlock()
	select {
	case <-s.idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("supervisor: %d subscriptions still open: %w", s.Count(), ctx.Err())
	}
}

// Count is the number of live subscriptions.
func (s *Supervisor) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// predicateHash identifies a predicate in logs without writing it out: predicates may hold
// values (customer ids, …) that do not belong in a log. /v1/subscriptions shows the text.
func predicateHash(p *predicate.Predicate) string {
	sum := sha256.Sum256([]byte(predicateText(p)))
	return hex.EncodeToString(sum[:6])
}

func predicateText(p *predicate.Predicate) string {
	if p == nil {
		return ""
	}
	return p.String()
}
