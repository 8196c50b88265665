package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// shelf is an upstream that keeps its messages and no reader's place, as a RabbitMQ stream read
// over AMQP 0-9-1: a reader says where to start.
type shelf struct {
	mu    sync.Mutex
	avail int // messages 1..avail are there
}

func (s *shelf) add(n int) {
	s.mu.Lock()
	s.avail += n
	s.mu.Unlock()
}

func (s *shelf) has(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return n <= s.avail
}

// placed reads a shelf and keeps its own place (source.Resuming) as the amqp source does a
// stream's: loaded from its store at its first connection after UseStore, kept in memory after,
// saved after each message its emit took.
type placed struct {
	shelf *shelf
	// Belong to Run's goroutine, or to the caller of UseStore while Run does not run.
	st     source.Store
	last   int
	loaded bool
}

func (p *placed) UseStore(st source.Store) {
	p.st, p.loaded, p.last = st, false, 0
}

func (p *placed) AcknowledgesAfterEmit() bool { return true }

func (p *placed) Run(ctx context.Context, up func(), emit source.Emit) error {
	if !p.loaded && p.st != nil {
		b, err := p.st.Load()
		if err != nil {
			return err
		}
		if len(b) > 0 {
			if p.last, err = strconv.Atoi(string(b)); err != nil {
				return source.Permanent(err)
			}
		}
		p.loaded = true
	}
	up()
	for ctx.Err() == nil {
		n := p.last + 1
		if !p.shelf.has(n) {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		// No upstream id: a message read twice would be stored twice.
		if err := emit(ctx, &stream.Message{Key: "k", Body: fmt.Appendf(nil, `{"n":%d}`, n), Time: time.Now()}); err != nil {
			return nil
		}
		p.last = n
		if p.st != nil {
			if err := p.st.Save([]byte(strconv.Itoa(n))); err != nil {
				return err
			}
		}
	}
	return nil
}

// startPlaced starts a node called name with one source "shelf" read by a.
func startPlaced(t *testing.T, urls, prefix, name string, a *placed) *node {
	t.Helper()
	cfg := cluster.Config{NATS: cluster.NATS{URL: urls}, StreamPrefix: prefix, Node: name,
		LeaseTTL: time.Second, LeasePoll: 50 * time.Millisecond}.WithDefaults("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	sup, err := New([]Source{{Name: "shelf", Type: "test", Adapter: a}},
		Options{History: router.History{Size: 1000}, Cluster: conn, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(runCtx) }() // waited for by stop
	var once sync.Once
	n := &node{sup: sup, conn: conn}
	n.stop = func() {
		once.Do(func() {
			_ = sup.Shutdown(context.Background())
			stopRun()
			<-done
			conn.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// The place that a source keeps upstream itself is the cluster's: the node that takes the
// source over goes on from where the last holder stopped, not from its own (stale) place, and
// so every message is in the log once, in order.
func TestClusterResumingPlaceMoves(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	sh := &shelf{}
	pa, pb := &placed{shelf: sh}, &placed{shelf: sh}
	sh.add(50)
	a := startPlaced(t, urls, prefix, "a", pa)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return a.lastSeq("shelf") == 50 }, "a at %d", func() int { return int(a.lastSeq("shelf")) })
	a.stop()
	b := startPlaced(t, urls, prefix, "b", pb)
	sh.add(50)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return b.lastSeq("shelf") >= 100 }, "b at %d", func() int { return int(b.lastSeq("shelf")) })
	// a again, with its place of 50 in memory: it must take the cluster's, 100.
	a2 := startPlaced(t, urls, prefix, "a", pa)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return a2.lastSeq("shelf") >= 100 }, "a's second run at %d", func() int { return int(a2.lastSeq("shelf")) })
	b.stop()
	sh.add(50)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return a2.lastSeq("shelf") >= 150 }, "a's second run at %d", func() int { return int(a2.lastSeq("shelf")) })
	time.Sleep(300 * time.Millisecond)
	if got := a2.lastSeq("shelf"); got != 150 {
		t.Fatalf("the log holds %d messages for 150 read: a source read again from a stale place", got)
	}
	// The log, in order: the n of message seq is seq.
	items, err := a2.conn.Log("shelf").Fetch(context.Background(), a2.sup.logs["shelf"].epochNow(), 1, 200)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		if it.Kind != cluster.KindMessage || string(it.Msg.Payload()) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Fatalf("log item %d: %+v", i+1, it)
		}
	}
	if len(items) != 150 {
		t.Fatalf("the log holds %d items", len(items))
	}
}

// A place is saved over the revision its node read: a node that read it before another saved
// it, or that no longer holds the lease, cannot move it back.
func TestClusterPlaceFenced(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	conn := func(name string) *cluster.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := cluster.Connect(ctx, cluster.Config{NATS: cluster.NATS{URL: urls}, StreamPrefix: prefix, Node: name}, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	held := true
	a := &clusterPlace{st: conn("a").State(), key: placeKey("s.1"), held: func() bool { return held }}
	b := &clusterPlace{st: conn("b").State(), key: placeKey("s.1"), held: func() bool { return true }}
	if v, err := a.Load(); v != nil || err != nil {
		t.Fatalf("no place yet: %q %v", v, err)
	}
	if err := a.Save([]byte("10")); err != nil {
		t.Fatal(err)
	}
	if err := a.Save([]byte("20")); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Load(); string(v) != "20" || err != nil {
		t.Fatalf("b loads %q %v", v, err)
	}
	if err := b.Save([]byte("30")); err != nil {
		t.Fatal(err)
	}
	if err := a.Save([]byte("25")); !errors.Is(err, cluster.ErrRevision) {
		t.Fatalf("a stale save: %v", err)
	}
	if v, _ := b.Load(); string(v) != "30" {
		t.Fatalf("the place moved back to %q", v)
	}
	held = false
	if _, err := a.Load(); err != nil {
		t.Fatal(err)
	}
	if err := a.Save([]byte("40")); !errors.Is(err, cluster.ErrRevision) {
		t.Fatalf("a save without the lease: %v", err)
	}
}

// A node that lost the lease while it ran (here: its lease key removed under it) and takes it
// again after another node read on does not go on from its own place in memory: its adapter is
// handed the cluster's place again at every holding.
func TestClusterResumingPlaceAfterLeaseLost(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	sh := &shelf{}
	sh.add(50)
	a := startPlaced(t, urls, prefix, "a", &placed{shelf: sh})
	sourcetest.Eventually(t, 20*time.Second, func() bool { return a.lastSeq("shelf") == 50 }, "a at %d", func() int { return int(a.lastSeq("shelf")) })
	b := startPlaced(t, urls, prefix, "b", &placed{shelf: sh})
	js, err := jetstream.New(a.conn.NATS())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, cluster.LeaseBucket(prefix))
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, cluster.EscapeName("shelf")); err != nil {
		t.Fatal(err)
	}
	// Until a's renewal fails, both hold it by their clocks: the window a removed key opens.
	sourcetest.Eventually(t, 10*time.Second, func() bool {
		return b.sup.logs["shelf"].lease.Held() && !a.sup.logs["shelf"].lease.Held()
	}, "b taking the lease a lost")
	sh.add(50)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return a.lastSeq("shelf") >= 100 }, "a at %d", func() int { return int(a.lastSeq("shelf")) })
	b.stop()
	sourcetest.Eventually(t, 10*time.Second, func() bool { return a.sup.logs["shelf"].lease.Held() }, "a taking the lease again")
	sh.add(50)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return a.lastSeq("shelf") >= 150 }, "a at %d", func() int { return int(a.lastSeq("shelf")) })
	time.Sleep(300 * time.Millisecond)
	if got := a.lastSeq("shelf"); got != 150 {
		t.Fatalf("the log holds %d messages for 150 read: a read again from its own place", got)
	}
}
