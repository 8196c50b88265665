package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/supervisor"
)

// sinkAdmin is the server's sinks: the configured ones, and those created through the API,
// whose definitions it keeps so that they come back after a restart: in the data directory
// (sinks/<name>.json) alone, in the cluster's state (sinks.def.<name>) in a cluster, where
// every node runs every sink, each delivered by the node that holds its lease. It is the
// httpapi.Sinks of /v1/sinks.
//
// A sink made through the API reads only what its creator may read: the sources its
// credential reads, through its credential's forced predicate, which the sink's record keeps
// with its definition (sinkRecord).
type sinkAdmin struct {
	*sink.Manager
	cfg        *config.Config
	sup        *supervisor.Supervisor
	log        *slog.Logger
	data       *sequence.Dir  // nil: API sinks last as long as the process (alone)
	state      *cluster.State // in a cluster: the definitions and positions; nil alone
	store      sink.PositionStore
	configured map[string]bool
}

var _ httpapi.Sinks = (*sinkAdmin)(nil)

// sinkRecord is what is kept of a sink made through the API: its definition as it was sent,
// and who made it with what they may read, which bound the sink each time it starts.
type sinkRecord struct {
	// Definition is the body of POST /v1/sinks: the sink's fields, as JSON (or YAML).
	Definition string `json:"definition"`
	// Owner is the credential that made it (auth.Principal's String), "" without auth.
	Owner string `json:"owner,omitempty"`
	// Reads are the sources the owner may read when it made the sink: nil every source.
	Reads []string `json:"reads"`
	// Where is the owner's forced predicate, ANDed with the sink's.
	Where string `json:"where,omitempty"`
}

// decodeRecord reads a kept record; a file of an earlier version holds the definition alone,
// made by an admin with no bounds.
func decodeRecord(b []byte) sinkRecord {
	var rec sinkRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Definition == "" {
		return sinkRecord{Definition: string(b)}
	}
	return rec
}

// defFile is where an API sink's definition is kept alone; defKey, posKey and infoKey are the
// cluster's records of a sink.
func defFile(name string) string { return "sinks/" + name + ".json" }
func defKey(name string) string  { return "sinks.def." + name }
func posKey(name string) string  { return "sinks.pos." + name }
func infoKey(name string) string { return "sinks.info." + name }

// stateWait bounds one request to the cluster's state.
const stateWait = 10 * time.Second

// newSinkAdmin makes the configured sinks and those the API created in an earlier run, and a
// manager to run them, keeping positions in the data directory (in memory without one), or in
// a cluster (conn not nil) in the cluster's state, where the API sinks come from too (Run).
func newSinkAdmin(cfg *config.Config, sup *supervisor.Supervisor, data *sequence.Dir, conn *cluster.Conn, log *slog.Logger) (*sinkAdmin, error) {
	a := &sinkAdmin{cfg: cfg, sup: sup, data: data, log: log, configured: make(map[string]bool), store: &sink.MemoryStore{}}
	switch {
	case conn != nil:
		a.state = conn.State()
		a.data = nil // the definitions are the cluster's
		a.store = &clusterPositions{st: a.state, revs: make(map[string]uint64)}
	case data != nil:
		a.store = sink.FileStore{Dir: data}
	}
	var defs []sink.Def
	for _, sc := range cfg.Sinks {
		d, err := a.def(sc, sinkRecord{})
		if err != nil {
			return nil, fmt.Errorf("sink %q: %w", sc.Name, err)
		}
		defs = append(defs, d)
		a.configured[sc.Name] = true
	}
	a.Manager = sink.NewManager(defs, sup, a.store, sup.LastSeq, log)
	if conn != nil {
		a.Share(&clusterSinks{conn: conn, st: a.state})
	}
	for _, name := range a.saved() {
		b, err := a.data.ReadFile(defFile(name))
		if err == nil {
			_, err = a.create(decodeRecord(b), false)
		}
		if err != nil {
			log.Error("a sink created through the API does not start again", "sink", name, "file", filepath.Join(data.Path(), defFile(name)), "err", err)
		}
	}
	return a, nil
}

// Run runs the sinks until ctx ends; in a cluster it also follows the API sinks' definitions
// in the cluster's state, starting those made on any node and stopping those removed.
func (a *sinkAdmin) Run(ctx context.Context) {
	if a.state == nil {
		a.Manager.Run(ctx)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { a.follow(ctx) }) // waited for below
	a.Manager.Run(ctx)
	wg.Wait()
}

// follow watches the API sinks' definitions in the cluster's state until ctx ends, watching
// again after a failure.
func (a *sinkAdmin) follow(ctx context.Context) {
	for failures := 0; ctx.Err() == nil; {
		err := a.state.Watch(ctx, defKey("*"), func(c cluster.Change) {
			failures = 0
			name := strings.TrimPrefix(c.Key, defKey(""))
			if a.configured[name] {
				return
			}
			if c.Deleted {
				if err := a.Remove(name); err == nil {
					a.log.Info("sink removed on another node", "sink", name)
				}
				return
			}
			if a.Has(name) {
				return
			}
			_, err := a.create(decodeRecord(c.Value), false)
			if ce, ok := errors.AsType[*httpapi.CreateError](err); ok && ce.Code == "sink_exists" {
				return // made by a request to this node meanwhile
			}
			if err != nil {
				a.log.Error("a sink created through the API does not start on this node", "sink", name, "err", err)
			}
		}, nil)
		if ctx.Err() != nil {
			return
		}
		failures++
		a.log.Warn("cluster: cannot follow the sinks' definitions; trying again", "err", err)
		if sleepCtx(ctx, min(time.Duration(failures)*time.Second, 10*time.Second)) != nil {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// saved lists the API sinks whose definitions the data directory keeps, sorted.
func (a *sinkAdmin) saved() []string {
	if a.data == nil {
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(a.data.Path(), "sinks"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// forcedLimits bound a credential's forced predicate, as the API compiles it for a stream.
var forcedLimits = predicate.Limits{MaxBytes: 64 << 10}

// def makes the destination and settings of the sink sc, bounded by what rec's owner may read:
// its sources must be readable (none named: those readable), and the owner's forced predicate
// is ANDed with its own, as a stream's is (predicate.And).
func (a *sinkAdmin) def(sc config.Sink, rec sinkRecord) (sink.Def, error) {
	t, ok := sink.Lookup(sc.Type)
	if !ok {
		return sink.Def{}, fmt.Errorf("type %q is not registered", sc.Type)
	}
	set := sink.Settings{
		Name: sc.Name, Sources: sc.Sources, BatchMax: sc.Batch.Max, BatchWait: sc.Batch.Wait,
		RetryMaxAge: sc.Retry.MaxAge,
	}
	owner := &auth.Principal{Sources: rec.Reads, Where: rec.Where}
	if len(set.Sources) == 0 {
		for _, n := range a.sup.Names() {
			if owner.CanRead(n) {
				set.Sources = append(set.Sources, n)
			}
		}
		if len(set.Sources) == 0 {
			return sink.Def{}, &httpapi.CreateError{Status: http.StatusForbidden, Code: "forbidden", Message: "this credential may read no source"}
		}
	}
	for _, n := range set.Sources {
		if !owner.CanRead(n) {
			return sink.Def{}, &httpapi.CreateError{Status: http.StatusForbidden, Code: "forbidden", Message: fmt.Sprintf("this credential may not read source %q", n)}
		}
	}
	l := a.cfg.Limits
	lim := predicate.Limits{MaxBytes: l.PredicateMaxBytes, MaxCost: l.PredicateMaxCost}
	if sc.Where != "" {
		p, err := predicate.Compile(sc.Where, lim)
		if err != nil {
			return sink.Def{}, fmt.Errorf("where: %w", err)
		}
		set.Predicate = p
	}
	if rec.Where != "" {
		forced, err := predicate.Compile(rec.Where, forcedLimits)
		if err != nil {
			return sink.Def{}, &httpapi.CreateError{Status: http.StatusForbidden, Code: "forbidden", Message: "the credential's where does not compile: " + err.Error()}
		}
		if set.Predicate, err = predicate.And(forced, set.Predicate, lim); err != nil {
			return sink.Def{}, fmt.Errorf("where: %w", err)
		}
	}
	env := sink.Env{AllowPrivate: a.cfg.Limits.WebhookAllowPrivate, Batch: sc.Batch.Max > 1, Stdout: os.Stdout}
	dest, err := t.New(sc.Spec, env)
	if err != nil {
		return sink.Def{}, err
	}
	open := func() (sink.Destination, error) { return t.New(sc.Spec, env) }
	return sink.Def{Settings: set, Type: sc.Type, Owner: rec.Owner, Dest: dest, Open: open}, nil
}

func invalid(code, format string, args ...any) error {
	return &httpapi.CreateError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

func exists(format string, args ...any) error {
	return &httpapi.CreateError{Status: http.StatusConflict, Code: "sink_exists", Message: fmt.Sprintf(format, args...)}
}

// Create makes and starts the sink body describes (JSON, or YAML: the configuration's fields)
// for by, bounded by what by may read, and keeps its definition.
func (a *sinkAdmin) Create(body []byte, by *auth.Principal) (string, error) {
	rec := sinkRecord{Definition: string(body)}
	if by != nil && by.Method != auth.MethodNone {
		rec.Owner, rec.Reads, rec.Where = by.String(), by.Sources, by.Where
	}
	return a.create(rec, true)
}

func (a *sinkAdmin) create(rec sinkRecord, keep bool) (string, error) {
	var sc config.Sink
	if err := yaml.Unmarshal([]byte(rec.Definition), &sc); err != nil {
		return "", invalid("invalid_sink", "the body is not a JSON object of a sink's fields: %v", err)
	}
	if errs := a.cfg.CheckSink(sc); len(errs) > 0 {
		return "", invalid("invalid_sink", "%v", errors.Join(errs...))
	}
	d, err := a.def(sc, rec)
	if err != nil {
		if _, ok := errors.AsType[*httpapi.CreateError](err); ok {
			return "", err
		}
		if perr, ok := errors.AsType[*predicate.Error](err); ok {
			return "", perr // answered as a stream's bad predicate is, with its position
		}
		return "", invalid("invalid_sink", "%v", err)
	}
	if a.configured[sc.Name] {
		_ = d.Dest.Close()
		return "", exists("sink %q is in the configuration", sc.Name)
	}
	kept := false // in the cluster's state, by this request
	if keep {
		if err := a.keep(sc.Name, rec); err != nil {
			_ = d.Dest.Close()
			return "", err
		}
		kept = a.state != nil
		a.begin(d.Settings)
	}
	if err := a.Add(d); err != nil {
		_ = d.Dest.Close()
		switch {
		case errors.Is(err, sink.ErrExists) && kept:
			// This node's watch of the definitions started it first.
			return sc.Name, nil
		case errors.Is(err, sink.ErrExists):
			return "", exists("a sink named %q exists", sc.Name)
		}
		return "", &httpapi.CreateError{Status: http.StatusServiceUnavailable, Code: "shutting_down", Message: err.Error()}
	}
	return sc.Name, nil
}

// keep records a new API sink's definition: in the cluster's state, or in the data directory;
// a sink_exists error if one of that name is kept.
func (a *sinkAdmin) keep(name string, rec sinkRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	switch {
	case a.state != nil:
		ctx, cancel := context.WithTimeout(context.Background(), stateWait)
		defer cancel()
		if _, err := a.state.Put(ctx, defKey(name), b, 0); errors.Is(err, cluster.ErrRevision) {
			return exists("a sink named %q exists", name)
		} else if err != nil {
			return &httpapi.CreateError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprintf("keep sink %q: %v", name, err)}
		}
	case a.data != nil:
		if _, err := a.data.ReadFile(defFile(name)); !errors.Is(err, fs.ErrNotExist) {
			return exists("a sink named %q exists", name)
		}
		if err := a.data.WriteFile(defFile(name), append(b, '\n')); err != nil {
			return fmt.Errorf("keep sink %q: %w", name, err)
		}
	}
	return nil
}

// begin records where a new API sink starts: after each of its sources' newest message now, so
// that it delivers what comes after the answer to its POST, whichever node comes to deliver it
// and however long that node takes to begin.
func (a *sinkAdmin) begin(set sink.Settings) {
	pos := make(sink.Position, len(set.Sources))
	for _, s := range set.Sources {
		pos[s] = a.sup.LastSeq(s)
	}
	var err error
	if cp, ok := a.store.(*clusterPositions); ok {
		err = cp.create(set.Name, pos)
	} else {
		err = a.store.Save(set.Name, pos)
	}
	if err != nil {
		a.log.Warn("sink: cannot record where a new sink starts: it starts where its first delivery does", "sink", set.Name, "err", err)
	}
}

// Delete stops and forgets an API sink, its definition and its position; in a cluster, on every
// node. A configured sink is removed from the configuration, not here.
func (a *sinkAdmin) Delete(name string) error {
	if a.configured[name] {
		return &httpapi.CreateError{Status: http.StatusConflict, Code: "configured_sink", Message: fmt.Sprintf("sink %q is in the configuration: remove it there", name)}
	}
	if a.state != nil {
		return a.deleteShared(name)
	}
	if err := a.Remove(name); err != nil {
		return err
	}
	if a.data != nil {
		if err := a.data.RemoveFile(defFile(name)); err != nil {
			return err
		}
	}
	if s, ok := a.store.(interface{ Remove(string) error }); ok {
		return s.Remove(name)
	}
	return nil
}

// deleteShared removes an API sink from the cluster: its definition first, which every node
// follows (the one that delivers it stops), then its position and what its node showed. The
// node that delivered it cannot save its position again: the record it would replace is gone.
func (a *sinkAdmin) deleteShared(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), stateWait)
	defer cancel()
	b, _, err := a.state.Get(ctx, defKey(name))
	if err != nil {
		return &httpapi.CreateError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()}
	}
	if b == nil {
		if a.Remove(name) == nil {
			return nil // removed meanwhile; this node had not heard of it yet
		}
		return sink.ErrNotFound
	}
	if err := a.state.Delete(ctx, defKey(name)); err != nil {
		return &httpapi.CreateError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()}
	}
	_ = a.Remove(name) // here at once; the other nodes as they hear of it
	return errors.Join(a.state.Delete(ctx, posKey(name)), a.state.Delete(ctx, infoKey(name)))
}

// clusterPositions keeps the sinks' positions in the cluster's state, each saved over the
// revision this node last loaded or saved: once another node has saved a sink's position (its
// lease passed on), this node's Save is refused with sink.ErrMoved, and a stale node never
// moves a position back.
type clusterPositions struct {
	st   *cluster.State
	mu   sync.Mutex        // guards revs
	revs map[string]uint64 // per sink, the revision last loaded or saved by this node
}

// Load returns the position kept for name, nil if none, and remembers its revision.
func (p *clusterPositions) Load(name string) (sink.Position, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stateWait)
	defer cancel()
	b, rev, err := p.st.Get(ctx, posKey(name))
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.revs[name] = rev
	p.mu.Unlock()
	if b == nil {
		return nil, nil
	}
	var pos sink.Position
	if err := json.Unmarshal(b, &pos); err != nil {
		return nil, fmt.Errorf("the position kept in %s is damaged (%v)", posKey(name), err)
	}
	return pos, nil
}

// Save replaces name's position, if it is still the one this node loaded or saved last.
func (p *clusterPositions) Save(name string, pos sink.Position) error {
	b, err := json.Marshal(pos)
	if err != nil {
		return err
	}
	p.mu.Lock()
	rev := p.revs[name]
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), stateWait)
	defer cancel()
	n, err := p.st.Put(ctx, posKey(name), b, rev)
	if errors.Is(err, cluster.ErrRevision) {
		return fmt.Errorf("%w: %w", sink.ErrMoved, err)
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.revs[name] = n
	p.mu.Unlock()
	return nil
}

// create records a new sink's first position, unless a node that delivers it has already
// recorded one.
func (p *clusterPositions) create(name string, pos sink.Position) error {
	b, err := json.Marshal(pos)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateWait)
	defer cancel()
	if _, err := p.st.Put(ctx, posKey(name), b, 0); err != nil && !errors.Is(err, cluster.ErrRevision) {
		return err
	}
	return nil
}

// clusterSinks is the cluster's side of the sinks (sink.Shared): a lease per sink, and what the
// node that delivers a sink shows of it, in the cluster's state.
type clusterSinks struct {
	conn *cluster.Conn
	st   *cluster.State
}

func (c *clusterSinks) Lease(name string) sink.Lease { return c.conn.SinkLease(name) }

func (c *clusterSinks) Publish(ctx context.Context, name string, in sink.Info) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.st.Set(ctx, infoKey(name), b)
}

func (c *clusterSinks) Shown(ctx context.Context, name string) (sink.Info, bool) {
	b, _, err := c.st.Get(ctx, infoKey(name))
	if err != nil || b == nil {
		return sink.Info{}, false
	}
	var in sink.Info
	if json.Unmarshal(b, &in) != nil {
		return sink.Info{}, false
	}
	return in, true
}
