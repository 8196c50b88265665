package cluster_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/sourcetest"
)

// A record is written over the revision its writer read: a node that read it before another
// wrote it cannot put it back; a deleted record cannot be written over its old revision, and
// is made again from nothing.
func TestStateRevisions(t *testing.T) {
	t.Parallel()
	cs := leaseNodes(t, sourcetest.RequireJetStream(t), 2, time.Second)
	a, b := cs[0].State(), cs[1].State()
	ctx := context.Background()
	if v, rev, err := a.Get(ctx, "sinks.pos.x"); v != nil || rev != 0 || err != nil {
		t.Fatalf("no record: %q %d %v", v, rev, err)
	}
	r1, err := a.Put(ctx, "sinks.pos.x", []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "sinks.pos.x", []byte("9"), 0); !errors.Is(err, cluster.ErrRevision) {
		t.Fatalf("made twice: %v", err)
	}
	v, rev, err := b.Get(ctx, "sinks.pos.x")
	if string(v) != "1" || rev != r1 || err != nil {
		t.Fatalf("B reads %q %d %v", v, rev, err)
	}
	r2, err := b.Put(ctx, "sinks.pos.x", []byte("2"), rev)
	if err != nil {
		t.Fatal(err)
	}
	// A, stale, would move it back.
	if _, err := a.Put(ctx, "sinks.pos.x", []byte("1"), r1); !errors.Is(err, cluster.ErrRevision) {
		t.Fatalf("a stale write: %v", err)
	}
	if err := a.Delete(ctx, "sinks.pos.x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "sinks.pos.x", []byte("3"), r2); !errors.Is(err, cluster.ErrRevision) {
		t.Fatalf("a write over a deleted record: %v", err)
	}
	if v, rev, err := b.Get(ctx, "sinks.pos.x"); v != nil || rev != 0 || err != nil {
		t.Fatalf("deleted: %q %d %v", v, rev, err)
	}
	if _, err := b.Put(ctx, "sinks.pos.x", []byte("4"), 0); err != nil {
		t.Fatalf("made again: %v", err)
	}
	if err := a.Set(ctx, "sinks.info.x", []byte("shown")); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := b.Get(ctx, "sinks.info.x"); string(v) != "shown" {
		t.Fatalf("set: %q", v)
	}
}

// Watch tells the records there are, then says so, then every change, deletions included.
func TestStateWatch(t *testing.T) {
	t.Parallel()
	cs := leaseNodes(t, sourcetest.RequireJetStream(t), 2, time.Second)
	a, b := cs[0].State(), cs[1].State()
	ctx := context.Background()
	if _, err := a.Put(ctx, "sinks.def.one", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "sinks.pos.one", []byte("p"), 0); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got []string
	)
	caught := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = b.Watch(wctx, "sinks.def.*", func(c cluster.Change) {
			mu.Lock()
			defer mu.Unlock()
			s := c.Key + "=" + string(c.Value)
			if c.Deleted {
				s = c.Key + " deleted"
			}
			got = append(got, s)
		}, func() { close(caught) })
	})
	defer func() { cancel(); wg.Wait() }()
	select {
	case <-caught:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not catch up")
	}
	if _, err := a.Put(ctx, "sinks.def.two", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "sinks.def.one"); err != nil {
		t.Fatal(err)
	}
	want := "[sinks.def.one=1 sinks.def.two=2 sinks.def.one deleted]"
	sourcetest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3
	}, "three changes")
	mu.Lock()
	defer mu.Unlock()
	if s := "[" + strings.Join(got, " ") + "]"; s != want {
		t.Errorf("watched %s, want %s", s, want)
	}
}

// A sink's lease is its own: a source of the same name does not share it.
func TestSinkLeaseBesideSourceLease(t *testing.T) {
	t.Parallel()
	cs := leaseNodes(t, sourcetest.RequireJetStream(t), 2, time.Second)
	ctx := context.Background()
	src, snk := cs[0].Lease("orders"), cs[1].SinkLease("orders")
	if held, _, err := src.TryAcquire(ctx); !held || err != nil {
		t.Fatalf("source lease: %v %v", held, err)
	}
	if held, _, err := snk.TryAcquire(ctx); !held || err != nil {
		t.Fatalf("sink lease of the same name: %v %v", held, err)
	}
	if held, holder, _ := cs[0].SinkLease("orders").TryAcquire(ctx); held || holder != "nodeB" {
		t.Fatalf("A takes B's sink lease: %v %q", held, holder)
	}
	_ = src.Release(ctx)
	_ = snk.Release(ctx)
}
