package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease says which node reads a source upstream: the holder of the key EscapeName(source)
// in the KV bucket LeaseBucket(prefix), whose value is the holder's node name. The bucket
// forgets a key LeaseTTL after its last write, so a holder renews every third of it; a
// holder that stops (killed, paused, cut off) loses the key when it expires, and a follower,
// which looks every LeasePoll (nats-server 2.9 tells a watcher nothing when a key expires),
// takes it. Acquiring is a create that only one node can win, renewing an update that
// expects the revision the holder last wrote: at most one node holds a lease at a time, as
// the servers see it. A holder also keeps a deadline by its own monotonic clock, a TTL
// after it sent its last successful renewal: past it, Held says false even before a renewal
// has failed, which is what stops a holder that was paused past its lease from appending
// (and a Writer's fencing refuses whatever slips between the check and the append).
//
// The methods that change the lease (TryAcquire, Renew, Release, Campaign) belong to one
// goroutine; Held and Holder may be called from any.
type Lease struct {
	c        *Conn
	source   string
	key      string
	ttl      time.Duration
	poll     time.Duration
	bucketMu sync.Mutex
	kv       jetstream.KeyValue // guarded by bucketMu until made

	rev uint64 // the revision this node last wrote, while it holds the lease

	deadline atomic.Int64           // monotonic nanoseconds (since base) until which the lease is held; 0: not held
	holder   atomic.Pointer[string] // the holder as last seen
}

// base is the origin of Lease deadlines: time.Since(base) reads the monotonic clock.
var base = time.Now()

// Lease returns the lease of the source called name. It does no I/O.
func (c *Conn) Lease(name string) *Lease {
	l := &Lease{c: c, source: name, key: EscapeName(name), ttl: c.cfg.LeaseTTL, poll: c.cfg.LeasePoll}
	none := ""
	l.holder.Store(&none)
	return l
}

// bucket makes the lease bucket, or updates it to the configured TTL and replicas, once per
// Lease. The leases are kept in memory: a lease lost with a server's restart is taken again.
func (l *Lease) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.bucketMu.Lock()
	defer l.bucketMu.Unlock()
	if l.kv != nil {
		return l.kv, nil
	}
	cfg := l.c.cfg
	kv, err := l.c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket(cfg.StreamPrefix),
		Description: "streamux: which node reads each source upstream",
		History:     1,
		TTL:         cfg.LeaseTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: lease bucket %s: %w", LeaseBucket(cfg.StreamPrefix), err)
	}
	l.kv = kv
	return kv, nil
}

// Held reports whether this node holds the lease, by its own clock: it renewed it less than
// a TTL ago. Safe from any goroutine.
func (l *Lease) Held() bool {
	d := l.deadline.Load()
	return d != 0 && int64(time.Since(base)) < d
}

// Holder is the node that held the lease when this node last looked ("" for none). Safe from
// any goroutine.
func (l *Lease) Holder() string { return *l.holder.Load() }

func (l *Lease) setHolder(h string) (changed bool) {
	old := l.holder.Swap(&h)
	return *old != h
}

// TryAcquire takes the lease if no node holds it, and returns whether this node holds it
// now, and which node does.
func (l *Lease) TryAcquire(ctx context.Context) (held bool, holder string, err error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return false, "", err
	}
	sent := time.Since(base)
	rev, err := kv.Create(ctx, l.key, []byte(l.c.cfg.Node))
	if err == nil {
		l.rev = rev
		l.deadline.Store(int64(sent + l.ttl))
		l.setHolder(l.c.cfg.Node)
		return true, l.c.cfg.Node, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, l.Holder(), fmt.Errorf("cluster: lease %s: %w", l.source, err)
	}
	e, err := kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		l.setHolder("") // gone between the two calls: the next try may take it
		return false, "", nil
	case err != nil:
		return false, l.Holder(), fmt.Errorf("cluster: lease %s: %w", l.source, err)
	}
	h := string(e.Value())
	l.setHolder(h)
	return false, h, nil
}

// Renew extends the lease this node holds by a TTL. ErrLeaseLost: another node holds it, or
// it expired; any other error leaves the lease held until its deadline, when Held turns
// false.
func (l *Lease) Renew(ctx context.Context) error {
	if l.deadline.Load() == 0 {
		return ErrLeaseLost
	}
	kv, err := l.bucket(ctx)
	if err != nil {
		return err
	}
	sent := time.Since(base)
	rev, err := kv.Update(ctx, l.key, []byte(l.c.cfg.Node), l.rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || wrongLastSeq(err) {
			l.lost()
			return ErrLeaseLost
		}
		return fmt.Errorf("cluster: lease %s: renew: %w", l.source, err)
	}
	if !l.Held() {
		// Renewed after this node's deadline: the key had not expired yet, but Held has
		// said false meanwhile, so whatever relied on it has stopped. Let the lease go.
		l.rev = rev
		l.lost()
		_ = l.release(ctx)
		return ErrLeaseLost
	}
	l.rev = rev
	l.deadline.Store(int64(sent + l.ttl))
	return nil
}

// untilDeadline is how long the lease is held for by this node's clock (at least a
// millisecond, for a timer).
func (l *Lease) untilDeadline() time.Duration {
	return max(time.Duration(l.deadline.Load())-time.Since(base), time.Millisecond)
}

func (l *Lease) lost() {
	l.deadline.Store(0)
	if l.Holder() == l.c.cfg.Node {
		l.setHolder("")
	}
}

// Release gives the lease up, if this node holds it, so that another node may take it at
// its next look rather than after the TTL.
func (l *Lease) Release(ctx context.Context) error {
	if l.deadline.Load() == 0 {
		return nil
	}
	l.lost()
	return l.release(ctx)
}

func (l *Lease) release(ctx context.Context) error {
	kv, err := l.bucket(ctx)
	if err != nil {
		return err
	}
	err = kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	if err != nil && !wrongLastSeq(err) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("cluster: lease %s: release: %w", l.source, err)
	}
	return nil
}

// Campaign competes for the lease until ctx ends, and runs lead while this node holds it.
// It looks every LeasePoll; once it holds the lease it renews it every third of the TTL, and
// calls lead with a context that ends when the lease is lost (a renewal refused, or the
// deadline passed) or ctx ends. When lead returns, Campaign releases the lease (so another
// node can take it at once) and competes again after a poll. onHolder, if not nil, is called
// (on Campaign's goroutine) with each holder seen that differs from the one before, ""
// for none: the status event of a change of leader.
//
// lead's error is logged with log; Campaign returns nil once ctx ends, after lead has
// returned and the lease is released.
func (l *Lease) Campaign(ctx context.Context, log *slog.Logger, onHolder func(holder string), lead func(ctx context.Context) error) error {
	if log == nil {
		log = slog.Default()
	}
	seen := "\x00" // not a holder: the first look reports what it sees
	report := func(h string) {
		if h != seen {
			seen = h
			if onHolder != nil {
				onHolder(h)
			}
		}
	}
	for {
		held, holder, err := l.TryAcquire(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("cluster: lease", "source", l.source, "err", err)
		} else {
			report(holder)
		}
		if held {
			l.hold(ctx, log, lead)
			report(l.Holder())
		}
		if sleep(ctx, l.poll) != nil {
			return nil
		}
	}
}

// hold runs lead while the lease is held, renewing it, then releases it.
func (l *Lease) hold(ctx context.Context, log *slog.Logger, lead func(ctx context.Context) error) {
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	// lead runs while the lease is held; hold waits for it (<-done) before it returns.
	go func() { done <- lead(leadCtx) }()
	renew := time.NewTicker(l.ttl / 3)
	defer renew.Stop()
	// expire fires at the lease's deadline by this node's clock, should no renewal have
	// moved it: lead is stopped then, not at the next tick.
	expire := time.NewTimer(l.untilDeadline())
	defer expire.Stop()
	for {
		select {
		case <-expire.C:
			if !l.Held() {
				cancel()
				<-done
				l.releaseSoon(ctx, log)
				return
			}
			expire.Reset(l.untilDeadline())
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				log.Warn("cluster: the holder's work ended", "source", l.source, "err", err)
			}
			l.releaseSoon(ctx, log)
			return
		case <-renew.C:
			rctx, rcancel := context.WithTimeout(ctx, l.ttl/3)
			err := l.Renew(rctx)
			rcancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("cluster: lease renewal", "source", l.source, "err", err)
			}
			if !l.Held() {
				cancel()
				<-done
				l.releaseSoon(ctx, log)
				return
			}
		case <-ctx.Done():
			<-done
			l.releaseSoon(ctx, log)
			return
		}
	}
}

// releaseSoon releases the lease on a deadline of its own, ctx may have ended.
func (l *Lease) releaseSoon(ctx context.Context, log *slog.Logger) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl/3)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		log.Warn("cluster: lease release", "source", l.source, "err", err)
	}
}
