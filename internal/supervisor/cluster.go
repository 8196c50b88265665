package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// In a cluster (Options.Cluster), every source has a replicated log (internal/cluster), and a
// node runs, per source:
//
//   - feed: the log's Reader, which hands every message, under the log's sequence, to the
//     source's router (router.FromLog), from where the node's history begins; a skip and a
//     reset of the log become the router's Skip and Jump. Every node runs it, and nothing
//     else reaches a router.
//   - for an upstream source (RabbitMQ, NATS, Kafka, …), campaign: the source's lease; on
//     the one node that holds it, the adapter runs with an emit that appends to the log
//     (leadWriter), which returns once the log stored the message for an adapter that
//     acknowledges after emit, so that it acknowledges what the log holds; the others' are
//     appended in batches.
//   - for an http source (source.Logged), the adapter runs on every node and appends each
//     request's messages itself (logAppender).
//
// A resume from an id that the router's history does not hold (older, or not read yet) is
// served from the log by a replay (replay.go).

// clustered is one source's side of the cluster.
type clustered struct {
	name string
	log  *cluster.Log // appends, leases and bounds
	// read is the same log on a connection of its own, for the feed and replays: on the
	// appenders' connection, a node that appended at full speed routed as little as a third
	// of it (BENCHMARKS.md, cluster), its reader's messages waiting behind the acks.
	read  *cluster.Log
	lease *cluster.Lease // nil for a source that every node runs (source.Logged)
	// resuming is the adapter, if it keeps its own place upstream (source.Resuming), and
	// place that place, in the cluster's state: handed to it again each time this node
	// takes the lease, so that it goes on from where the last holder stopped.
	resuming source.Resuming
	place    *clusterPlace
	epoch    atomic.Pointer[time.Time]
	// filled is closed once the router holds what the log held when this node began to
	// read it: the history's fill. Until then a new subscription would take the fill for
	// live messages, so Subscribe waits for it, and the node is not ready.
	filled     chan struct{}
	fillClosed sync.Once

	mu       sync.Mutex // guards info and infoTime
	info     cluster.Info
	infoTime time.Time
}

// fillDone marks the history's fill done.
func (c *clustered) fillDone() { c.fillClosed.Do(func() { close(c.filled) }) }

// isFilled reports whether the history's fill is done.
func (c *clustered) isFilled() bool {
	select {
	case <-c.filled:
		return true
	default:
		return false
	}
}

// epochNow is the log's epoch as this node reads it; zero before the feed has begun.
func (c *clustered) epochNow() time.Time {
	if e := c.epoch.Load(); e != nil {
		return *e
	}
	return time.Time{}
}

// infoMaxAge is how long GET /v1/sources shows a log's bounds before asking the servers again.
const infoMaxAge = time.Second

// logInfo is the log's Info, as the servers told it at most infoMaxAge ago; it asks them
// within ctx otherwise.
func (c *clustered) logInfo(ctx context.Context) (cluster.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.infoTime) < infoMaxAge {
		return c.info, nil
	}
	info, err := c.log.Info(ctx)
	if err != nil {
		return info, err // asked again next time
	}
	c.info, c.infoTime = info, time.Now()
	return info, nil
}

// ClusterInfo is what GET /v1/sources adds of a source in a cluster.
type ClusterInfo struct {
	// Leader is the node that reads the source upstream; "" for none, and for an http
	// source, which every node takes.
	Leader string `json:"leader"`
	// LogFirstSeq and LogLastSeq are the sequences of the oldest and newest messages in the
	// source's log.
	LogFirstSeq uint64 `json:"log_first_seq"`
	LogLastSeq  uint64 `json:"log_last_seq"`
	// Lag is how many messages of the log this node's router has not routed yet.
	Lag uint64 `json:"lag"`
	// LogError says why the log's bounds are unknown, when they are.
	LogError string `json:"log_error,omitempty"`
	// Leased says that one node at a time reads the source (Leader), as opposed to an http
	// source, which every node takes.
	Leased bool `json:"-"`
}

// clusterInfo is source n's ClusterInfo.
func (s *Supervisor) clusterInfo(n string) *ClusterInfo {
	c := s.logs[n]
	ci := &ClusterInfo{Leased: c.lease != nil}
	if c.lease != nil {
		ci.Leader = c.lease.Holder()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.logInfo(ctx)
	if err != nil {
		ci.LogError = err.Error()
		return ci
	}
	ci.LogFirstSeq, ci.LogLastSeq = info.First, info.Last
	if last := s.t().routers[n].Counters().LastSeq; info.Last > last {
		ci.Lag = info.Last - last
	}
	return ci
}

// startSeq is where a node's history of a log begins: as many of its newest messages as the
// history holds.
func startSeq(info cluster.Info, history int) uint64 {
	from := info.First
	if n := uint64(history); info.Last+1 > n {
		from = max(from, info.Last+1-n)
	}
	return from
}

// firstSeq is what Ensure takes: one more than the highest sequence this node has seen of the
// log, 0 if none, so that a log made again goes on after it.
func firstSeq(r *router.Router) uint64 {
	if last := r.Counters().LastSeq; last > 0 {
		return last + 1
	}
	return 0
}

// feed reads c's log into its router r until ctx ends, trying again with backoff when the
// servers fail.
func (s *Supervisor) feed(ctx context.Context, c *clustered, r *router.Router, b source.Backoff) {
	var rd *cluster.Reader
	defer func() {
		if rd != nil {
			rd.Close()
		}
	}()
	failures := 0
	var fillEnd uint64 // the log's last when this node began to read it
	for ctx.Err() == nil {
		if rd == nil {
			info, err := c.log.Ensure(ctx, firstSeq(r))
			if err != nil {
				failures++
				s.log.Warn("cluster: cannot make the source's log; trying again", "source", c.name, "err", err)
				if sleep(ctx, b.Delay(failures)) != nil {
					return
				}
				continue
			}
			from := startSeq(info, s.historySize())
			if err := r.Jump(ctx, from); err != nil {
				return // the router stopped
			}
			c.epoch.Store(&info.Epoch)
			rd = c.read.Reader(from, info.Epoch, 0)
			fillEnd = info.Last
			if fillEnd < from {
				c.fillDone() // nothing to fill
			}
			s.log.Info("cluster: reading the source's log", "source", c.name, "stream", c.log.Stream(), "from", from, "last", info.Last)
		}
		err := rd.Run(ctx, func(it cluster.Item) error {
			failures = 0
			var err error
			switch it.Kind {
			case cluster.KindMessage:
				if s.opt.FeedDelay > 0 {
					if err := sleep(ctx, s.opt.FeedDelay); err != nil {
						return err
					}
				}
				seq := it.Msg.Seq
				if err = r.Emit(ctx, it.Msg); err == nil && seq >= fillEnd {
					// Routed once the router has taken it: a subscription that the
					// gate lets in now is added after it (a control operation).
					c.fillDone()
				}
			case cluster.KindSkip:
				s.log.Warn("cluster: the log no longer holds messages this node had not read", "source", c.name, "first", it.First, "last", it.Last)
				if err = r.Skip(ctx, it.Last); err == nil && it.Last >= fillEnd {
					c.fillDone()
				}
			case cluster.KindReset:
				s.log.Warn("cluster: the source's log was reset: ids up to the old log's last name nothing now", "source", c.name, "old_last", it.Last, "first", it.First)
				c.epoch.Store(&it.Epoch)
				if err = r.Jump(ctx, it.First); err == nil {
					c.fillDone()
				}
			}
			return err
		})
		if ctx.Err() != nil || errors.Is(err, router.ErrStopped) {
			return
		}
		failures++
		s.log.Warn("cluster: reading the source's log failed; trying again", "source", c.name, "err", err)
		if sleep(ctx, b.Delay(failures)) != nil {
			return
		}
	}
}

// campaign competes for c's lease until ctx ends, and runs the source's adapter while this
// node holds it, appending what it reads to the log. Every holder seen is told to the
// source's subscriptions on this node.
func (s *Supervisor) campaign(ctx context.Context, c *clustered, r *router.Router, run *source.Runner, a source.Source) {
	var t takeover
	onHolder := func(holder string) {
		s.log.Info("cluster: the source's leader", "source", c.name, "leader", holder, "this_node", c.lease.Held())
		r.NotifyLeader(t.leader(s.clusterState(c.name), c.lease.Held()), holder)
	}
	// The adapter's states are the source's while this node holds the lease. Once it lost
	// it, the adapter stops (reconnecting when an append was refused, then stopped) while
	// another node reads the source: onHolder tells the subscriptions that, not the adapter.
	// A stop of this node (ctx) is told as when alone. An adapter that starts here as this
	// node takes over a source that was up keeps it up: its first connection is not a change
	// of the source's state (takeover).
	notify := func(st source.State, err error) {
		if ctx.Err() == nil && !c.lease.Held() {
			return
		}
		if t.adapter(st) {
			r.Notify(st, err)
		}
	}
	ack, _ := a.(source.Acknowledging)
	_ = c.lease.Campaign(ctx, s.log, onHolder, func(lctx context.Context) error {
		t.begin()
		if c.resuming != nil {
			// The place this node kept when it last held the lease may be stale: the
			// adapter reads the cluster's again before it connects.
			c.resuming.UseStore(c.place)
		}
		w := &leadWriter{c: c, r: r, s: s, notify: notify}
		if ack != nil && ack.AcknowledgesAfterEmit() {
			run.Run(lctx, w.emit, notify)
			return nil
		}
		w.runBatched(lctx, run)
		return nil
	})
}

// takeover keeps what a source's subscriptions on this node were last told of its state, so
// that a change of the node that reads it upstream is told as the contract says: a status
// event with the leader, the state unchanged. When this node takes the lease of a source that
// was up, its adapter's first connection (connecting, then up) is not told: the source was up
// and is up. Anything else the adapter goes through (reconnecting, failed) is told, and ends
// the takeover. The campaign's goroutine and the adapter's call it: a mutex.
type takeover struct {
	mu     sync.Mutex
	told   source.State // the state last told; "" before the first
	taking bool         // this node took the lease of a source that was up, and its adapter is not up yet
}

// begin marks this node's taking of the lease.
func (t *takeover) begin() {
	t.mu.Lock()
	t.taking = t.told == source.Up
	t.mu.Unlock()
}

// adapter reports whether the adapter's state st is to be told, and records it if so.
func (t *takeover) adapter(st source.State) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.taking {
		switch st {
		case source.Connecting:
			return false
		case source.Up:
			t.taking = false
			return false
		}
		t.taking = false
	}
	t.told = st
	return true
}

// leader is the state to tell with a new leader, st as this node knows it, and records it.
// Where this node is the new leader (mine), its adapter has not run yet under this lease, and
// st is what it last was: the source is up if it was up (the takeover), else connecting.
func (t *takeover) leader(st source.State, mine bool) source.State {
	t.mu.Lock()
	defer t.mu.Unlock()
	if mine && st != source.Up {
		st = source.Connecting
		if t.told == source.Up {
			st = source.Up
		}
	}
	t.told = st
	return st
}

// clusterState is source n's state as this node knows it: its runner's, where this node reads
// it; else up while some node holds its lease, connecting while none does.
func (s *Supervisor) clusterState(n string) source.State {
	c := s.logs[n]
	if c.lease == nil || c.lease.Held() {
		return s.t().runners[n].Info().State
	}
	if c.lease.Holder() != "" {
		return source.Up
	}
	return source.Connecting
}

// leadWriter appends what a source reads, on the node that holds its lease, to its log through
// a fenced Writer. An adapter that acknowledges after emit (source.Acknowledging) gets emit,
// which returns once the log stored the message; the others get runBatched's, which queues it
// and returns, and a goroutine appends the queue in batches.
type leadWriter struct {
	c *clustered
	r *router.Router
	s *Supervisor
	w *cluster.Writer // belongs to the goroutine that appends
	// notify tells the subscriptions of the adapter's states (campaign's).
	notify func(source.State, error)
}

// Batched appends.
const (
	// leadQueue is how many messages an adapter may read ahead of the log.
	leadQueue = 4096
	// leadBatch is the most messages appended at once.
	leadBatch = 1000
	// leadFlush bounds how long the queue is appended after the adapter stopped.
	leadFlush = 2 * time.Second
)

// emit appends m and returns once the log stored it.
func (w *leadWriter) emit(ctx context.Context, m *stream.Message) error {
	if m.Lost > 0 {
		// A notice of messages the adapter could not pass on: the log has no place for it,
		// so it reaches this node's subscriptions only.
		return w.r.Emit(ctx, m)
	}
	return w.append(ctx, []cluster.Entry{{ID: m.UpstreamID, Msg: m}})
}

// runBatched runs the adapter with an emit that queues each message (waiting while leadQueue are
// queued), while a goroutine of its own appends them in batches, in order. What the log did
// not store (the lease was lost, the servers failed) is lost, as the upstream will not deliver
// it again: this node's subscriptions get a gap for it (reason not_stored, counted as lost),
// and the log says how many.
func (w *leadWriter) runBatched(ctx context.Context, run *source.Runner) {
	q := make(chan *stream.Message, leadQueue)
	done := make(chan struct{})
	// What the adapter queued before it stopped is appended after ctx ends too, within
	// leadFlush: on a clean stop the lease is released only after this returns, and a lease
	// that was lost stops the writer by itself (Lease.Held).
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() { defer close(done); w.drain(dctx, q) }() // waited for below
	emit := func(ectx context.Context, m *stream.Message) error {
		if m.Lost > 0 {
			return w.r.Emit(ectx, m)
		}
		select {
		case q <- m:
			return nil
		case <-ectx.Done():
			return ectx.Err()
		}
	}
	run.Run(ctx, emit, w.notify)
	close(q) // the adapter has returned: nothing emits any more
	t := time.NewTimer(leadFlush)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancel()
		<-done
	}
}

// drain appends what q holds, in batches, until q is closed.
func (w *leadWriter) drain(ctx context.Context, q <-chan *stream.Message) {
	batch := make([]cluster.Entry, 0, leadBatch)
	for m := range q {
		batch = append(batch[:0], cluster.Entry{ID: m.UpstreamID, Msg: m})
	more:
		for len(batch) < leadBatch {
			select {
			case m, ok := <-q:
				if !ok {
					break more
				}
				batch = append(batch, cluster.Entry{ID: m.UpstreamID, Msg: m})
			default:
				break more
			}
		}
		if err := w.append(ctx, batch); err != nil {
			n := uint64(len(batch))
			w.s.log.Warn("cluster: messages read upstream were not appended to the log, and are lost", "source", w.c.name, "messages", n, "err", err)
			_ = w.r.Emit(context.WithoutCancel(ctx), &stream.Message{Lost: n, LostReason: stream.GapNotStored})
		}
		clear(batch) // the messages are the log's now: hold none of them
	}
}

// append stores entries in the log through the writer, making a new writer where the log moved
// under this one while the lease is still held, and the log again where it was deleted.
func (w *leadWriter) append(ctx context.Context, entries []cluster.Entry) error {
	lease := w.c.lease
	for attempt := 1; ; attempt++ {
		if w.w == nil {
			wr, err := w.c.log.Writer(ctx, lease.Held)
			if errors.Is(err, cluster.ErrNoLog) {
				_, err = w.c.log.Ensure(ctx, firstSeq(w.r))
				if err == nil {
					continue
				}
			}
			if err != nil {
				return fmt.Errorf("cluster: append to the log: %w", err)
			}
			w.w = wr
		}
		acks, err := w.w.Append(ctx, entries)
		if err == nil {
			return nil
		}
		w.w = nil
		for len(entries) > 0 && acks[0].Seq != 0 { // stored before the failure
			entries, acks = entries[1:], acks[1:]
		}
		switch {
		case errors.Is(err, cluster.ErrLeaseLost), errors.Is(err, cluster.ErrStale) && !lease.Held():
			return fmt.Errorf("cluster: this node no longer reads the source: %w", err)
		case errors.Is(err, cluster.ErrStale):
			// A late append of an earlier holder landed after this node took the lease:
			// go on after it.
			if attempt > 3 {
				return err
			}
		case errors.Is(err, cluster.ErrNoLog):
			if _, err := w.c.log.Ensure(ctx, firstSeq(w.r)); err != nil {
				return fmt.Errorf("cluster: make the log again: %w", err)
			}
		default:
			return fmt.Errorf("cluster: append to the log: %w", err)
		}
	}
}

// logAppender is the source.Log of an http source: its requests' messages, appended to the log,
// with each message's UpstreamID (Idempotency-Key, an envelope's "id") as its id.
type logAppender struct {
	c *clustered
	r *router.Router
	// wait bounds how long a request waits for the node to have made and read its log.
	wait time.Duration
}

func (a *logAppender) Append(ctx context.Context, msgs []*stream.Message) ([]uint64, error) {
	// Not before the node has made the log and read its history: a request's messages
	// appended while the stream is still being made would be stored out of order (those
	// refused for want of a stream are sent again after the others).
	if !a.c.isFilled() {
		t := time.NewTimer(a.wait)
		defer t.Stop()
		select {
		case <-a.c.filled:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, errors.New("cluster: this node has not read the source's log yet")
		}
	}
	entries := make([]cluster.Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = cluster.Entry{ID: m.UpstreamID, Msg: m}
	}
	acks, err := a.c.log.Append(ctx, entries)
	if errors.Is(err, cluster.ErrNoLog) {
		// The log was deleted: make it again, after the last this node saw, and once more.
		if _, err = a.c.log.Ensure(ctx, firstSeq(a.r)); err == nil {
			acks, err = a.c.log.Append(ctx, entries)
		}
	}
	seqs := make([]uint64, 0, len(acks))
	for _, ack := range acks {
		if ack.Seq == 0 {
			break
		}
		seqs = append(seqs, ack.Seq)
	}
	if err == nil && len(seqs) < len(msgs) {
		err = errors.New("cluster: the log did not store every message")
	}
	return seqs, err
}

// sleep waits d, or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitFilled waits, within the bound of a resume that waits, until the history's fill of each of
// names that has a log is done (clustered.filled).
func (s *Supervisor) waitFilled(ctx context.Context, names []string) error {
	if s.logs == nil {
		return nil
	}
	var t *time.Timer
	for _, n := range names {
		c := s.logs[n]
		if c.isFilled() {
			continue
		}
		if t == nil {
			t = time.NewTimer(s.opt.ResumeWait)
			defer t.Stop()
		}
		select {
		case <-c.filled:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%w: this node is still reading the log of %q", ErrUnavailable, n)
		}
	}
	return nil
}

// placeKey is the record, in the cluster's state, of the place that source name's adapter keeps
// upstream itself (source.Resuming).
func placeKey(name string) string { return "sources." + cluster.EscapeName(name) + ".place" }

// placeWait bounds one read or write of a source's place in the cluster's state.
const placeWait = 10 * time.Second

// clusterPlace is a source.Store in the cluster's state: the place upstream of a source that
// keeps its own (a RabbitMQ stream's offset), shared by the nodes, so that the node that takes
// the source's lease goes on from where the last holder stopped rather than from a place of its
// own. Each Save replaces the revision this node last loaded or saved: a holder that lost the
// lease cannot move the place back once the new holder has saved it. Load and Save come from
// the adapter, one at a time.
type clusterPlace struct {
	st   *cluster.State
	key  string
	held func() bool // whether this node holds the source's lease

	mu    sync.Mutex // guards rev and wrote
	rev   uint64     // the revision this node last loaded or saved
	wrote []byte     // what it saved last
}

var _ source.Store = (*clusterPlace)(nil)

// Load returns the cluster's record, nil if there is none, and remembers its revision.
func (p *clusterPlace) Load() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), placeWait)
	defer cancel()
	b, rev, err := p.st.Get(ctx, p.key)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.rev, p.wrote = rev, nil
	p.mu.Unlock()
	return b, nil
}

// Save replaces the record by b, over the revision this node last loaded or saved. Refused
// (cluster.ErrRevision) once another node wrote it, or this node no longer holds the lease.
func (p *clusterPlace) Save(b []byte) error {
	if !p.held() {
		return fmt.Errorf("%w: this node no longer reads the source", cluster.ErrRevision)
	}
	ctx, cancel := context.WithTimeout(context.Background(), placeWait)
	defer cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	rev, err := p.st.Put(ctx, p.key, b, p.rev)
	if errors.Is(err, cluster.ErrRevision) && p.wrote != nil {
		// The answer to this node's last save may have been lost: if the record is what
		// it wrote, the revision is its own.
		if cur, crev, gerr := p.st.Get(ctx, p.key); gerr == nil && bytes.Equal(cur, p.wrote) {
			rev, err = p.st.Put(ctx, p.key, b, crev)
		}
	}
	if err != nil {
		return err
	}
	p.rev, p.wrote = rev, append(p.wrote[:0], b...)
	return nil
}
