package sink

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Def is one sink as the server runs it: how to read and deliver, and where to.
type Def struct {
	Settings
	// Type is the sink's type, for display.
	Type string
	// Owner is who made the sink through the API (auth.Principal's String: "api_key:ci"), ""
	// for a sink of the configuration.
	Owner string
	// Dest is the destination of the first delivery, made when the sink was checked; nil to
	// make one with Open.
	Dest Destination
	// Open makes the sink's destination again: in a cluster, each time this node takes the
	// sink over from another (the destination of a node that stops delivering is closed).
	// nil: Dest is the only one.
	Open func() (Destination, error)
}

// ErrExists is what Add returns for a name that a sink has already.
var ErrExists = errors.New("a sink of that name exists")

// ErrClosed is what Add returns once the manager is stopping.
var ErrClosed = errors.New("sinks are stopping")

// ErrNotFound is what Remove returns for a name no sink has.
var ErrNotFound = errors.New("no such sink")

// Lease says which node of a cluster delivers one sink (cluster.Lease).
type Lease interface {
	// Campaign competes for the lease until ctx ends and runs lead while this node holds
	// it, with a context that ends when the lease is lost; it releases the lease when lead
	// returns, and competes again.
	Campaign(ctx context.Context, log *slog.Logger, onHolder func(holder string), lead func(ctx context.Context) error) error
	// Held reports whether this node holds the lease.
	Held() bool
	// Holder is the node that held the lease when this node last looked, "" for none.
	Holder() string
}

// Shared is what a Manager needs to run its sinks on one node of several: a lease per sink, so
// that one node at a time delivers it, and a place where that node shows its delivery to the
// others, whose GET /v1/sinks shows it too. The positions are kept in the PositionStore, which
// in a cluster is shared as well (and refuses a stale holder's Save with ErrMoved).
type Shared interface {
	// Lease returns the lease of the sink name.
	Lease(name string) Lease
	// Publish records in, what the node that delivers the sink name shows of it.
	Publish(ctx context.Context, name string, in Info) error
	// Shown returns what the node that delivers the sink name last published; false if
	// nothing is known.
	Shown(ctx context.Context, name string) (Info, bool)
}

// publishEvery is how often the node that delivers a sink in a cluster shows its delivery to
// the others.
const publishEvery = time.Second

// Manager runs the sinks: a Runner each, on a goroutine of its own, from Run until Run's
// context ends; sinks are added and removed while it runs (POST and DELETE /v1/sinks). In a
// cluster (Share), each sink is delivered by the one node that holds its lease, from the
// position the shared store keeps, and taken over by another when that node stops.
type Manager struct {
	read   Reader
	store  PositionStore
	log    *slog.Logger
	start  func(source string) uint64
	shared Shared // nil: this node alone delivers every sink

	mu      sync.Mutex // guards the fields below
	ctx     context.Context
	closed  bool // Run is stopping: nothing is added any more
	sinks   map[string]*managed
	pending []*managed // added before Run
	wg      sync.WaitGroup
}

// managed is one sink the manager runs.
type managed struct {
	def   Def
	lease Lease                  // nil alone
	r     atomic.Pointer[Runner] // this node's runner of the sink: the current delivery's, or the last one's
	first Destination            // def.Dest until a delivery takes it; guarded by Manager.mu
	stop  context.CancelFunc     // nil until it runs
	done  chan struct{}          // closed when its goroutine has returned
}

// NewManager returns a manager of defs, reading from read and keeping positions in store; a
// sink with no saved position begins, in each source, after start(source).
func NewManager(defs []Def, read Reader, store PositionStore, start func(source string) uint64, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{read: read, store: store, log: log, start: start, sinks: make(map[string]*managed)}
	for _, d := range defs {
		_ = m.Add(d) // names are unique: the configuration checked them
	}
	return m
}

// Share makes the manager one node of a cluster: each sink delivered by the node that holds its
// lease. Called before Run and before any Add, once.
func (m *Manager) Share(sh Shared) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shared = sh
	for name, s := range m.sinks {
		s.lease = sh.Lease(name)
	}
}

// Add runs a new sink; ErrExists if the name is taken. Before Run, it starts with Run.
func (m *Manager) Add(d Def) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.sinks[d.Name]; ok {
		return ErrExists
	}
	s := &managed{def: d, first: d.Dest, done: make(chan struct{})}
	s.r.Store(NewRunner(d.Settings, nil, m.read, m.store, m.log))
	if m.shared != nil {
		s.lease = m.shared.Lease(d.Name)
	}
	m.sinks[d.Name] = s
	if m.ctx == nil {
		m.pending = append(m.pending, s)
	} else {
		m.goLocked(s)
	}
	return nil
}

// goLocked starts s; the caller holds mu and Run has begun.
func (m *Manager) goLocked(s *managed) {
	ctx, stop := context.WithCancel(m.ctx)
	s.stop = stop
	m.wg.Go(func() { // waited for by Run
		defer close(s.done)
		if s.lease == nil {
			if err := m.deliver(ctx, s); err != nil {
				m.log.Error("sink stopped", "sink", s.def.Name, "err", err)
			}
			return
		}
		_ = s.lease.Campaign(ctx, m.log, nil, func(lctx context.Context) error {
			if err := m.deliver(lctx, s); err != nil && !IsPermanent(err) {
				return err
			}
			return nil
		})
	})
}

// deliver runs one delivery of s: alone, the only one; in a cluster, one holding of its lease.
// It makes a new runner that goes on with the counters of the last one.
func (m *Manager) deliver(ctx context.Context, s *managed) error {
	m.mu.Lock()
	dest := s.first
	s.first = nil
	m.mu.Unlock()
	if dest == nil {
		if s.def.Open == nil {
			return errors.New("sink: no destination to deliver to")
		}
		var err error
		if dest, err = s.def.Open(); err != nil {
			return err
		}
	}
	prev := s.r.Load()
	r := NewRunner(s.def.Settings, dest, m.read, m.store, m.log)
	r.info = prev.Info()
	r.info.State = StateUp
	s.r.Store(r)
	if m.shared == nil {
		return r.Run(ctx, m.start)
	}
	pctx, stopPublish := context.WithCancel(ctx)
	published := make(chan struct{})
	go func() { // waited for below
		defer close(published)
		m.publish(pctx, s.def.Name, r)
	}()
	err := r.Run(ctx, m.start)
	if IsPermanent(err) {
		// Failed for good: this node holds the sink, failed (and shows it so), rather than
		// let the nodes take turns at sending what the destination refuses.
		m.log.Error("sink stopped", "sink", s.def.Name, "err", err)
		<-ctx.Done()
	}
	stopPublish()
	<-published
	return err
}

// publish shows r's delivery to the other nodes every publishEvery until ctx ends, and once
// more then.
func (m *Manager) publish(ctx context.Context, name string, r *Runner) {
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, publishEvery)
		if err := m.shared.Publish(pctx, name, r.Info()); err != nil && ctx.Err() == nil {
			m.log.Debug("sink: cannot show the delivery to the other nodes", "sink", name, "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishEvery)
			_ = m.shared.Publish(last, name, r.Info())
			cancel()
			return
		case <-t.C:
		}
	}
}

// Remove stops the sink name, waits for it, and forgets it. ErrNotFound if there is none.
func (m *Manager) Remove(name string) error {
	m.mu.Lock()
	s, ok := m.sinks[name]
	if ok {
		delete(m.sinks, name)
	}
	first := s != nil && s.stop == nil
	if ok && first {
		m.pending = removePending(m.pending, s)
	}
	m.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	if !first {
		s.stop()
		<-s.done
	}
	m.mu.Lock()
	dest := s.first
	s.first = nil
	m.mu.Unlock()
	if dest != nil {
		_ = dest.Close()
	}
	return nil
}

func removePending(list []*managed, s *managed) []*managed {
	for i, p := range list {
		if p == s {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// Has reports whether the manager runs a sink called name.
func (m *Manager) Has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.sinks[name]
	return ok
}

// Run runs every sink until ctx ends, and returns once they all have stopped (each saves its
// position as it stops, and in a cluster releases its lease). A sink that fails stops alone;
// the others go on.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	for _, s := range m.pending {
		m.goLocked(s)
	}
	m.pending = nil
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.closed = true // no sink starts after this: Wait sees them all
	m.mu.Unlock()
	m.wg.Wait()
	m.mu.Lock()
	var never []Destination // of sinks this node never delivered (another held their leases)
	for _, s := range m.sinks {
		if s.first != nil {
			never = append(never, s.first)
			s.first = nil
		}
	}
	m.mu.Unlock()
	for _, d := range never {
		_ = d.Close()
	}
}

// SinkInfo is what GET /v1/sinks shows of one sink.
type SinkInfo struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Owner is who made the sink through the API ("api_key:ci", "jwt:svc"); absent for a
	// sink of the configuration.
	Owner string `json:"owner,omitempty"`
	// Node is, in a cluster, the node that delivers the sink; "" while none does.
	Node string `json:"node,omitempty"`
	Info
}

// Sinks describes every sink, sorted by name.
func (m *Manager) Sinks() []SinkInfo {
	m.mu.Lock()
	names := make([]string, 0, len(m.sinks))
	for n := range m.sinks {
		names = append(names, n)
	}
	m.mu.Unlock()
	sort.Strings(names)
	out := make([]SinkInfo, 0, len(names))
	for _, n := range names {
		if si, ok := m.Sink(n); ok {
			out = append(out, si)
		}
	}
	return out
}

// shownWait bounds how long Sink waits for what another node shows of a sink.
const shownWait = 2 * time.Second

// Sink describes the sink name; false if there is none. In a cluster, a sink that another
// node delivers is described as that node last showed it.
func (m *Manager) Sink(name string) (SinkInfo, bool) {
	m.mu.Lock()
	s, ok := m.sinks[name]
	m.mu.Unlock()
	if !ok {
		return SinkInfo{}, false
	}
	si := SinkInfo{Name: name, Type: s.def.Type, Owner: s.def.Owner, Info: s.r.Load().Info()}
	if s.lease == nil {
		return si, true
	}
	si.Node = s.lease.Holder()
	if s.lease.Held() {
		return si, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), shownWait)
	defer cancel()
	if in, ok := m.shared.Shown(ctx, name); ok {
		si.Info = in
	}
	return si, true
}
