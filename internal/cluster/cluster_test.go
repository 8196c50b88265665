package cluster_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/natstest"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// Tests of three nodes on an in-process cluster of three current nats-servers, with logs of
// three replicas.

// threeNodes connects one node to each server of tc, sharing one prefix.
func threeNodes(t testing.TB, tc *natstest.Cluster, cfg cluster.Config) []*cluster.Conn {
	cfg.StreamPrefix = sourcetest.StreamPrefix()
	cfg.Replicas = 3
	var cs []*cluster.Conn
	for i := range 3 {
		c := cfg
		c.Node = "node" + strconv.Itoa(i+1)
		// Each node prefers its own server, and may fail over to the others.
		urls := tc.URL(i)
		for j := range 3 {
			if j != i {
				urls += "," + tc.URL(j)
			}
		}
		cs = append(cs, connect(t, urls, c))
	}
	return cs
}

// background runs r on a goroutine until the test ends, sending its items to the returned
// channel; the test's cleanup stops it and waits.
func background(t testing.TB, r *cluster.Reader) <-chan cluster.Item {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan cluster.Item, 1<<16)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = r.Run(ctx, func(it cluster.Item) error {
			select {
			case ch <- it:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		r.Close()
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ch
}

// collect takes n items from ch, failing after d.
func collect(t testing.TB, ch <-chan cluster.Item, n int, d time.Duration) []cluster.Item {
	t.Helper()
	timeout := time.After(d)
	var items []cluster.Item
	for len(items) < n {
		select {
		case it := <-ch:
			items = append(items, it)
		case <-timeout:
			t.Fatalf("%d of %d items after %v", len(items), n, d)
		}
	}
	return items
}

// Messages ingested on one node are read by every node under the same sequences, with the
// same key, headers, body and time, byte for byte.
func TestClusterSameBytesOnEveryNode(t *testing.T) {
	t.Parallel()
	tc := sharedCluster(t)
	cs := threeNodes(t, tc, cluster.Config{})
	info := ensure(t, cs[0].Log("orders"))
	var chans []<-chan cluster.Item
	for _, c := range cs {
		chans = append(chans, background(t, c.Log("orders").Reader(1, info.Epoch, 0)))
	}
	r := rand.New(rand.NewPCG(10, 11))
	const n = 1500
	var sent []*stream.Message
	for len(sent) < n {
		var es []cluster.Entry
		for range min(n-len(sent), 1+r.IntN(200)) {
			m := cluster.RandomMessage(r)
			sent = append(sent, m)
			es = append(es, cluster.Entry{Msg: m})
		}
		appendAll(t, cs[1].Log("orders"), es) // ingest on node 2
	}
	var got [3][]cluster.Item
	for i, ch := range chans {
		got[i] = collect(t, ch, n, 30*time.Second)
	}
	for seq := range n {
		for i := range 3 {
			it := got[i][seq]
			if it.Kind != cluster.KindMessage || it.Msg.Seq != uint64(seq+1) || !cluster.SameMessage(sent[seq], it.Msg) {
				t.Fatalf("node %d, seq %d: %s", i+1, seq+1, describe(it))
			}
		}
	}
}

// An id de-duplicates across nodes; fencing and leases hold on replicated logs too.
func TestClusterDeduplicatesAndFences(t *testing.T) {
	t.Parallel()
	tc := sharedCluster(t)
	cs := threeNodes(t, tc, cluster.Config{LeaseTTL: time.Second})
	ctx := context.Background()
	ensure(t, cs[0].Log("events"))
	a1 := appendAll(t, cs[0].Log("events"), []cluster.Entry{{ID: "idem-1", Msg: msg(1)}})
	a3 := appendAll(t, cs[2].Log("events"), []cluster.Entry{{ID: "idem-1", Msg: msg(1)}, {ID: "idem-2", Msg: msg(2)}})
	if a1[0].Seq != 1 || a3[0].Seq != 1 || !a3[0].Duplicate || a3[1].Seq != 2 {
		t.Fatalf("acks %+v %+v", a1, a3)
	}

	l1, l3 := cs[0].Lease("events"), cs[2].Lease("events")
	if held, _, err := l1.TryAcquire(ctx); !held || err != nil {
		t.Fatal(held, err)
	}
	if held, holder, err := l3.TryAcquire(ctx); held || holder != "node1" || err != nil {
		t.Fatal(held, holder, err)
	}
	w1, _ := cs[0].Log("events").Writer(ctx, nil)
	w3, _ := cs[2].Log("events").Writer(ctx, nil)
	if _, err := w3.Append(ctx, entries(3, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Append(ctx, entries(5, 50)); !errors.Is(err, cluster.ErrStale) {
		t.Fatalf("stale writer: %v", err)
	}
	if info, _ := cs[1].Log("events").Info(ctx); info.Last != 4 {
		t.Fatalf("log ends at %d", info.Last)
	}
}

// A log deleted and made again by another node is a reset for every reader; made again, it
// starts after the old log's last sequence (a current server honours first_seq).
func TestClusterResetIsNoticed(t *testing.T) {
	t.Parallel()
	tc := sharedCluster(t)
	cs := threeNodes(t, tc, cluster.Config{Storage: "memory"})
	ctx := context.Background()
	l := cs[0].Log("reset")
	info := ensure(t, l)
	ch := background(t, cs[1].Log("reset").Reader(1, info.Epoch, 200*time.Millisecond))
	appendAll(t, l, entries(1, 5))
	collect(t, ch, 5, 10*time.Second)
	if err := cs[2].Log("reset").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := cs[2].Log("reset").Ensure(ctx, 6)
	if err != nil || again.First != 6 {
		t.Fatalf("made again: %+v, %v", again, err)
	}
	appendAll(t, cs[2].Log("reset"), entries(6, 6))
	items := collect(t, ch, 2, 10*time.Second)
	if items[0].Kind != cluster.KindReset || items[0].Last != 5 || items[0].First != 6 || describe(items[1]) != "message 6" {
		t.Fatalf("after the reset: %v", describeAll(items))
	}
}

// Killing the server that leads a log while a holder appends to it and every node reads it:
// the appends go on once another server leads, and every reader reads each message once, in
// the holder's order, with no hole.
func TestClusterLeaderKilledWhileAppending(t *testing.T) {
	t.Parallel()
	tc := natstest.Start(t, 3)
	cs := threeNodes(t, tc, cluster.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	l := cs[0].Log("killed")
	info := ensure(t, l)
	leader := tc.Index(info.Leader)
	if leader < 0 {
		t.Fatalf("leader %q", info.Leader)
	}
	// The holder and a reader on a node whose own server survives; one more reader on the
	// node whose server dies, which fails over to another.
	holder := (leader + 1) % 3
	chans := []<-chan cluster.Item{
		background(t, cs[holder].Log("killed").Reader(1, info.Epoch, 0)),
		background(t, cs[leader].Log("killed").Reader(1, info.Epoch, 0)),
	}
	w, err := cs[holder].Log("killed").Writer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const batches, size = 60, 50
	var killedAt time.Time
	var stalls []time.Duration
	for b := range batches {
		if b == batches/3 {
			killedAt = time.Now()
			tc.Kill(leader)
		}
		start := time.Now()
		acks, err := w.Append(ctx, entries(b*size+1, (b+1)*size))
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		if acks[size-1].Seq != uint64((b+1)*size) {
			t.Fatalf("batch %d ends at %d", b, acks[size-1].Seq)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			stalls = append(stalls, d)
		}
	}
	after, _ := l.Info(ctx)
	t.Logf("killed %s; appends stalled %v; %v from the kill to the end; new leader %s", info.Leader, stalls, time.Since(killedAt), after.Leader)
	for i, ch := range chans {
		items := collect(t, ch, batches*size, 30*time.Second)
		for k, it := range items {
			want := msg(k + 1)
			if it.Kind != cluster.KindMessage || it.Msg.Seq != uint64(k+1) || !cluster.SameMessage(want, it.Msg) {
				t.Fatalf("reader %d, item %d: %s", i, k, describe(it))
			}
		}
	}
	// Unfenced appends (HTTP ingest) go on too, each stored once.
	acks := appendAll(t, l, entries(1, 100))
	if acks[99].Seq != batches*size+100 {
		t.Fatalf("ingest ends at %d", acks[99].Seq)
	}
}
