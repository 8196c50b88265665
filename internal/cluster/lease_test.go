package cluster_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/sourcetest"
)

// leaseNodes connects n nodes to urls, sharing one prefix, with the given lease TTL.
func leaseNodes(t testing.TB, urls string, n int, ttl time.Duration) []*cluster.Conn {
	prefix := sourcetest.StreamPrefix()
	var cs []*cluster.Conn
	for i := range n {
		cs = append(cs, connect(t, urls, cluster.Config{StreamPrefix: prefix, LeaseTTL: ttl, LeasePoll: 50 * time.Millisecond,
			Node: "node" + string(rune('A'+i))}))
	}
	return cs
}

// campaign runs l.Campaign on a goroutine until the test ends (it waits for it), telling
// started when lead begins.
func campaign(t testing.TB, l *cluster.Lease, lead func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Campaign(ctx, nil, nil, lead) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func TestLeaseHasOneHolder(t *testing.T) {
	t.Parallel()
	cs := leaseNodes(t, sourcetest.RequireJetStream(t), 2, time.Second)
	a, b := cs[0].Lease("orders.eu"), cs[1].Lease("orders.eu")
	ctx := context.Background()
	if held, holder, err := a.TryAcquire(ctx); !held || holder != "nodeA" || err != nil || !a.Held() {
		t.Fatalf("A: %v %q %v", held, holder, err)
	}
	if held, holder, err := b.TryAcquire(ctx); held || holder != "nodeA" || err != nil || b.Held() || b.Holder() != "nodeA" {
		t.Fatalf("B: %v %q %v", held, holder, err)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil || a.Held() {
		t.Fatalf("release: %v", err)
	}
	if held, _, err := b.TryAcquire(ctx); !held || err != nil {
		t.Fatalf("B after A's release: %v %v", held, err)
	}
	if err := a.Renew(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("A renews a lease it released: %v", err)
	}
}

// A holder that stops renewing (killed, paused) loses the lease after its TTL: another node
// takes it within TTL and a poll, the old holder's clock says it lost it, its renewal is
// refused, and so are its appends, by its clock or by the log's fencing.
func TestLeaseOfAPausedHolderIsTakenOver(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second // renewed well within it on a loaded machine: at 1s, a CI run saw the new holder lose it mid-append
	cs := leaseNodes(t, sourcetest.RequireJetStream(t), 2, ttl)
	ctx := context.Background()
	log := cs[0].Log("paused")
	ensure(t, log)
	a := cs[0].Lease("paused")
	if held, _, err := a.TryAcquire(ctx); !held || err != nil {
		t.Fatal(held, err)
	}
	acquired := time.Now()
	byClock, _ := log.Writer(ctx, a.Held) // fenced by the lease's clock, and by the log
	if _, err := byClock.Append(ctx, entries(1, 1)); err != nil {
		t.Fatal(err)
	}
	unfenced, _ := log.Writer(ctx, nil) // fenced by the log alone

	// A is "paused": it renews no more. B campaigns, and appends once it holds the lease.
	b := cs[1].Lease("paused")
	tookOver := make(chan time.Duration, 1)
	campaign(t, b, func(ctx context.Context) error {
		tookOver <- time.Since(acquired)
		w, err := cs[1].Log("paused").Writer(ctx, b.Held)
		if err == nil {
			_, err = w.Append(ctx, entries(2, 2))
		}
		if err != nil {
			t.Error(err)
		}
		<-ctx.Done()
		return nil
	})
	var took time.Duration
	select {
	case took = <-tookOver:
	case <-time.After(5 * ttl):
		t.Fatal("no takeover")
	}
	t.Logf("takeover %v after the holder's last renewal (TTL %v, poll 50ms)", took, ttl)
	if took < ttl || took > ttl+ttl/2 {
		t.Errorf("takeover after %v: want within [TTL, TTL+poll+slack]", took)
	}
	// A resumes.
	if a.Held() {
		t.Fatal("A's clock says it still holds the lease")
	}
	if err := a.Renew(ctx); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("A's renewal: %v", err)
	}
	if _, err := byClock.Append(ctx, entries(3, 3)); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("A's append by its clock: %v", err)
	}
	sourcetest.Eventually(t, 5*time.Second, func() bool { info, _ := log.Info(ctx); return info.Last == 2 }, "B's append")
	if _, err := unfenced.Append(ctx, entries(3, 5)); !errors.Is(err, cluster.ErrStale) {
		t.Fatalf("A's append fenced by the log: %v", err)
	}
	if info, _ := log.Info(ctx); info.Last != 2 {
		t.Fatalf("log ends at %d", info.Last)
	}
}

// A holder that stops cleanly releases the lease, and another node takes it at its next look.
func TestLeaseReleasedIsTakenAtOnce(t *testing.T) {
	t.Parallel()
	cs := leaseNodes(t, sourcetest.RequireJetStream(t), 2, 2*time.Second)
	a, b := cs[0].Lease("clean"), cs[1].Lease("clean")
	aLeads := make(chan struct{})
	stopA := campaign(t, a, func(ctx context.Context) error { close(aLeads); <-ctx.Done(); return nil })
	<-aLeads
	bLeads := make(chan time.Time, 1)
	var holders []string
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() {
		_ = b.Campaign(ctx, nil, func(h string) { mu.Lock(); holders = append(holders, h); mu.Unlock() },
			func(ctx context.Context) error { bLeads <- time.Now(); <-ctx.Done(); return nil })
	})
	sourcetest.Eventually(t, 5*time.Second, func() bool { return b.Holder() == "nodeA" }, "B sees A hold")
	released := time.Now()
	stopA()
	select {
	case at := <-bLeads:
		t.Logf("takeover %v after a clean release (poll 50ms)", at.Sub(released))
		if d := at.Sub(released); d > time.Second {
			t.Errorf("takeover after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no takeover")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(holders) < 2 || holders[0] != "nodeA" || holders[len(holders)-1] != "nodeB" {
		t.Fatalf("holders seen by B: %q", holders)
	}
}

// Three nodes compete while leads come and go: never two leads at once.
func TestLeaseNeverHasTwoLeads(t *testing.T) {
	t.Parallel()
	cs := leaseNodes(t, sourcetest.RequireJetStream(t), 3, 600*time.Millisecond)
	var mu sync.Mutex
	active, terms := 0, 0
	for i, c := range cs {
		l := c.Lease("contended")
		r := rand.New(rand.NewPCG(uint64(i), 9))
		d := time.Duration(50+r.IntN(200)) * time.Millisecond
		campaign(t, l, func(ctx context.Context) error {
			mu.Lock()
			active++
			terms++
			if active > 1 {
				t.Errorf("%d leads at once", active)
			}
			mu.Unlock()
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			mu.Lock()
			active--
			mu.Unlock()
			return nil
		})
	}
	time.Sleep(3 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if terms < 4 {
		t.Fatalf("only %d terms", terms)
	}
}
