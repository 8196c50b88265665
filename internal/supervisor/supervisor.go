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
// unsubscribe only, never per message. The set of sources is an immutable table behind an
// atomic pointer: Reconfigure (a reload, reconfigure.go) hands a change to Run, whose goroutine
// alone starts and stops sources and routers and swaps the table.
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
	"sync/atomic"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// ErrUnknownSource is returned by Subscribe for a source that is not configured.
var ErrUnknownSource = errors.New("unknown source")

// DefaultResumeWait is Options.ResumeWait when none is given.
const DefaultResumeWait = 10 * time.Second

// ErrUnavailable is returned by Subscribe when, in a cluster, the source's log cannot be read to
// serve a resume: the servers did not answer.
var ErrUnavailable = errors.New("unavailable")

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
	// names two messages; nil numbers every source from 1 in every run. In a cluster, where
	// the log numbers the messages, it keeps the highest sequence this node has routed, after
	// which a log made again (lost with its servers) begins.
	// It is also where an adapter that keeps its own place upstream (source.Resuming)
	// keeps it, alone; in a cluster that place is the cluster's (cluster.go, clusterPlace).
	Data *sequence.Dir
	Log  *slog.Logger
	// Cluster, if set, makes this supervisor one node of a cluster: every source's messages
	// go through its log there (cluster.go).
	Cluster *cluster.Conn
	// ClusterRead, if set, is another connection to the same servers, on which the logs are
	// read; Cluster then only appends, so that reading does not wait behind appends.
	ClusterRead *cluster.Conn
	// ResumeWait bounds how long a resume from an id that the log holds and this node has
	// not read yet waits for this node to read it. Defaults to 10s.
	ResumeWait time.Duration
	// FeedDelay, a test hook, makes this node read each message of a log that much later.
	FeedDelay time.Duration
}

// Supervisor runs the sources and routers and keeps the live subscriptions.
type Supervisor struct {
	opt Options
	log *slog.Logger
	// tab holds the sources: replaced whole, never changed in place, by Run alone (a reload,
	// reconfigure.go), and read without a lock.
	tab atomic.Pointer[table]
	// logs are the sources' logs in a cluster; nil when alone. A cluster's sources do not
	// change at run time.
	logs map[string]*clustered
	// reconf carries Reconfigure's changes to Run, which applies them; runDone is closed
	// when Run returns.
	reconf  chan reconfig
	runDone chan struct{}

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
		subs: make(map[uint64]*Subscription), idle: make(chan struct{}),
		reconf: make(chan reconfig), runDone: make(chan struct{}),
	}
	t := newTable()
	if opt.ResumeWait <= 0 {
		opt.ResumeWait = DefaultResumeWait
		s.opt.ResumeWait = opt.ResumeWait
	}
	if opt.Cluster != nil {
		s.logs = make(map[string]*clustered)
	}
	for _, src := range sources {
		if _, dup := t.routers[src.Name]; dup {
			return nil, fmt.Errorf("supervisor: source %q configured twice", src.Name)
		}
		t.names = append(t.names, src.Name)
		r, err := s.newRouter(src)
		if err != nil {
			return nil, err
		}
		if opt.Cluster != nil {
			r.FromLog()
			read := opt.ClusterRead
			if read == nil {
				read = opt.Cluster
			}
			c := &clustered{name: src.Name, log: opt.Cluster.Log(src.Name), read: read.Log(src.Name), filled: make(chan struct{})}
			if a, ok := src.Adapter.(source.Logged); ok {
				a.UseLog(&logAppender{c: c, r: r, wait: opt.ResumeWait})
			} else {
				c.lease = opt.Cluster.Lease(src.Name)
				if a, ok := src.Adapter.(source.Resuming); ok {
					// Its place upstream is the cluster's, handed again at every
					// holding of the lease (campaign).
					c.resuming = a
					c.place = &clusterPlace{st: opt.Cluster.State(), key: placeKey(src.Name), held: c.lease.Held}
					a.UseStore(c.place)
				}
			}
			s.logs[src.Name] = c
		}
		t.routers[src.Name] = r
		t.set(src, opt.Log)
	}
	sort.Strings(t.names)
	s.tab.Store(t)
	return s, nil
}

// newRouter makes src's router: numbered on from the data directory's counter, if any, where
// a source that keeps its place upstream (source.Resuming) keeps it when alone.
func (s *Supervisor) newRouter(src Source) (*router.Router, error) {
	r := router.New(src.Name, s.opt.History, s.opt.Log)
	if s.opt.Data != nil {
		c, err := s.opt.Data.Counter(src.Name)
		if err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
		r.Persist(c)
		s.useStore(src)
	}
	return r, nil
}

// useStore hands a source that keeps its place upstream its store in the data directory, when
// alone (in a cluster its place is the cluster's).
func (s *Supervisor) useStore(src Source) {
	if a, ok := src.Adapter.(source.Resuming); ok && s.opt.Data != nil && s.opt.Cluster == nil {
		a.UseStore(s.opt.Data.SourceState(src.Name))
	}
}

// Run runs every router and source until ctx is done, then stops them: first the sources,
// which it waits for, then the routers. A router stops only once no source can emit to it any
// more, so it routes what its source emitted up to the end (a router also routes every message
// it accepted before it stops, whoever stops it), and the source's last state change reaches the
// clients. Run returns nil once every goroutine it started has returned.
func (s *Supervisor) Run(ctx context.Context) error {
	defer close(s.runDone)
	// The routers' context is not ctx: it ends after the sources have returned.
	routerCtx, stopRouters := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouters()
	var routers, sources sync.WaitGroup
	// Alone, each source and router runs under a context of its own, so that a reload can
	// stop one (reconfigure.go); in a cluster the set does not change.
	run := &running{ctx: ctx, routerCtx: routerCtx, routers: &routers, sources: &sources, live: map[string]*live{}}
	t := s.t()
	for _, name := range t.names {
		r, runner := t.routers[name], t.runners[name]
		c := s.logs[name]
		if c == nil {
			run.live[name] = run.start(r, runner)
			continue
		}
		routers.Go(func() { r.Run(routerCtx) }) // waited for below, after the sources
		if c.lease == nil {
			// Every node takes the source's messages, into the log (source.Logged).
			sources.Go(func() { runner.Run(ctx, r.Emit, r.Notify) }) // waited for below
		} else {
			sources.Go(func() { s.campaign(ctx, c, r, runner, t.adapters[name]) }) // waited for below
		}
		sources.Go(func() { s.feed(ctx, c, r, t.backoffs[name]) }) // waited for below
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case rc := <-s.reconf:
			rc.done <- s.apply(run, rc.change)
		}
	}
	sources.Wait()
	stopRouters()
	routers.Wait()
	return nil
}

// Names returns the configured source names, sorted.
func (s *Supervisor) Names() []string { return s.t().names }

// Adapter returns the adapter of source name, nil if there is none, to be asked for what only
// some adapters do (source.Publisher).
func (s *Supervisor) Adapter(name string) source.Source { return s.t().adapters[name] }

// Has reports whether name is a configured source.
func (s *Supervisor) Has(name string) bool { _, ok := s.t().routers[name]; return ok }

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
	// routers are the routers of Sources when the subscription was made, in order: Close
	// removes it from those, whatever a reload has made of the table since.
	routers []*router.Router
	// replays serve resumes from the log (replay.go); stopReplays ends them.
	replays     sync.WaitGroup
	stopReplays context.CancelFunc
}

// Subscribe creates the output and registers it with every router the client reads.
func (s *Supervisor) Subscribe(ctx context.Context, req Request) (*Subscription, error) {
	t := s.t() // a reload may replace it meanwhile: this subscription uses one
	names := req.Sources
	if len(names) == 0 {
		names = t.names
	}
	for _, n := range names {
		if _, ok := t.routers[n]; !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownSource, n)
		}
	}
	names = dedupe(names)
	if err := s.waitFilled(ctx, names); err != nil {
		return nil, err
	}
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
	for _, n := range names {
		sub.routers = append(sub.routers, t.routers[n])
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
		b, err := t.routers[n].Add(ctx, sub.Out, req.Predicate, from)
		if err != nil {
			if errors.Is(err, router.ErrStopped) {
				if _, ok := s.t().routers[n]; !ok {
					// A reload removed the source meanwhile: not a shutdown.
					return fmt.Errorf("%w %q", ErrUnknownSource, n)
				}
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
	var replays []int // in a cluster, the sources whose resume the log serves (replay.go)
	for i, n := range names {
		if from, ok := req.From[n]; ok {
			if err := add(i, router.Resume{After: from, Set: true, Log: s.logs != nil}); err != nil {
				sub.Close()
				return nil, err
			}
			if backlogs[i].FromLog {
				replay, err := s.logHolds(ctx, n, from)
				if err != nil {
					sub.Close()
					return nil, err
				}
				if replay {
					replays = append(replays, i)
					sub.Positions[n] = from
					continue
				}
				// Beyond the log's end: an id from elsewhere, as when alone.
				if err := add(i, router.Resume{After: from, Set: true}); err != nil {
					sub.Close()
					return nil, err
				}
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
				t.routers[n].CountTooCostly()
				break replay
			}
			if ok {
				sub.Backlog = append(sub.Backlog, ev)
			}
		}
	}
	if len(replays) > 0 {
		rctx, stop := context.WithCancel(context.Background())
		sub.stopReplays = stop
		for _, i := range replays {
			n, from := names[i], req.From[names[i]]
			sub.replays.Go(func() { s.replay(rctx, sub, n, from) }) // waited for by Close
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
		if sub.stopReplays != nil {
			// Before the routers: a replay that joins one after would stay in its table.
			sub.stopReplays()
			sub.replays.Wait()
		}
		s := sub.sup
		for _, r := range sub.routers {
			// Removal from a stopped router is a no-op; it holds nothing. The routers are
			// the ones it was added to: a reload that removed a source since may still be
			// stopping that source's router, which would route to it meanwhile.
			_ = r.Remove(context.Background(), sub.Out.ID())
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
