package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/ingest"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// upstream is a broker queue that redelivers: the adapter of whichever node reads it takes
// the next message, and it is gone once emit returned nil; a refused one goes back to the
// front. Its messages are numbered and carry their number as their upstream id.
type upstream struct {
	mu      sync.Mutex
	next    int // the next number to hand out
	last    int // the last number there is
	back    []int
	readers int // adapters reading now
	most    int // the most reading at once
	// acks makes the adapter a source.Acknowledging one: its emit returns once the log
	// stored the message, as RabbitMQ's and Kafka's do; else messages are appended in
	// batches.
	acks bool
}

func (u *upstream) take() (int, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.back) > 0 {
		n := u.back[0]
		u.back = u.back[1:]
		return n, true
	}
	if u.next > u.last {
		return 0, false
	}
	u.next++
	return u.next - 1, true
}

func (u *upstream) give(n int) {
	u.mu.Lock()
	u.back = append([]int{n}, u.back...)
	u.mu.Unlock()
}

// publish makes n more messages available.
func (u *upstream) publish(n int) {
	u.mu.Lock()
	u.last += n
	u.mu.Unlock()
}

// adapter is a source.Source reading u.
func (u *upstream) adapter() source.Source { return &upstreamSource{u: u} }

type upstreamSource struct{ u *upstream }

func (s *upstreamSource) AcknowledgesAfterEmit() bool { return s.u.acks }

func (s *upstreamSource) Run(ctx context.Context, up func(), emit source.Emit) error {
	u := s.u
	u.mu.Lock()
	u.readers++
	u.most = max(u.most, u.readers)
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.readers--
		u.mu.Unlock()
	}()
	up()
	for ctx.Err() == nil {
		n, ok := u.take()
		if !ok {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		m := &stream.Message{Key: "k", Body: fmt.Appendf(nil, `{"n":%d}`, n), Time: time.Now(), UpstreamID: fmt.Sprint("m-", n)}
		if err := emit(ctx, m); err != nil {
			u.give(n)
			return nil
		}
	}
	return nil
}

// node is one supervisor of a cluster, running until the test ends or stop is called.
type node struct {
	sup  *Supervisor
	conn *cluster.Conn
	stop func()
}

// startNode starts a node called name on the servers at urls, under prefix, with an upstream
// source "up" reading u and an http source "in".
func startNode(t *testing.T, urls, prefix, name string, history int, u *upstream, opts ...func(*Options)) *node {
	t.Helper()
	cfg := cluster.Config{NATS: cluster.NATS{URL: urls}, StreamPrefix: prefix, Node: name,
		LeaseTTL: time.Second, LeasePoll: 50 * time.Millisecond}.WithDefaults("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	sup, err := New([]Source{
		{Name: "up", Type: "test", Adapter: u.adapter()},
		{Name: "in", Type: "http", Adapter: ingest.New(ingest.Config{})},
	}, withOptions(Options{History: router.History{Size: history}, Cluster: conn, Log: log}, opts))
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

// lastSeq is where n's router of source stands.
func (n *node) lastSeq(source string) uint64 { return n.sup.t().routers[source].Counters().LastSeq }

// collect takes what out queues, as a transport would, until want says it has enough, the
// output ends, or d passes.
func collect(t *testing.T, out *output.Output, d time.Duration, enough func([]*stream.Event) bool) []*stream.Event {
	t.Helper()
	var evs []*stream.Event
	deadline := time.Now().Add(d)
	for !enough(evs) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d events, the last %s", d, len(evs), last(evs))
		}
		got, _ := out.Take(nil, 256)
		if len(got) == 0 {
			if out.Err() != nil {
				t.Fatalf("the output ended: %v", out.Err())
			}
			time.Sleep(time.Millisecond)
			continue
		}
		evs = append(evs, got...)
	}
	return evs
}

func last(evs []*stream.Event) string {
	if len(evs) == 0 {
		return "none"
	}
	return string(evs[len(evs)-1].JSON())
}

// bodyN is the number in a test message's body.
func bodyN(t *testing.T, ev *stream.Event) int {
	t.Helper()
	var b struct{ N int }
	if err := json.Unmarshal(ev.Msg.Payload(), &b); err != nil {
		t.Fatalf("%s: %v", ev.JSON(), err)
	}
	return b.N
}

// Two nodes read one upstream through one log: one reads it upstream, both route every message
// under the same id in the same bytes; ingest on either is stored once per id; a resume from an
// id older than a node's history is replayed from the log and joined to live without a hole or
// a repeat.
func TestClusterNodesShareTheLog(t *testing.T) {
	for _, acks := range []bool{false, true} {
		t.Run(fmt.Sprint("acks=", acks), func(t *testing.T) { testNodesShareTheLog(t, acks) })
	}
}

func testNodesShareTheLog(t *testing.T, acks bool) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	u := &upstream{next: 1, acks: acks}
	u.publish(300)
	a := startNode(t, urls, prefix, "a", 1000, u)
	b := startNode(t, urls, prefix, "b", 20, u)

	sourcetest.Eventually(t, 20*time.Second, func() bool { return a.lastSeq("up") == 300 && b.lastSeq("up") == 300 },
		"both nodes at 300: a %d, b %d", a.lastSeq("up"), b.lastSeq("up"))
	ctx := context.Background()
	ha, _ := a.sup.History(ctx, "up")
	hb, _ := b.sup.History(ctx, "up")
	if len(ha) != 300 || len(hb) != 20 {
		t.Fatalf("histories of %d and %d messages, want 300 and 20", len(ha), len(hb))
	}
	for i, ev := range hb {
		if want := ha[280+i]; string(ev.JSON()) != string(want.JSON()) {
			t.Fatalf("id %s: node b has %s, node a %s", ev.Msg.ID(), ev.JSON(), want.JSON())
		}
	}
	for i, ev := range ha {
		if ev.Seq() != uint64(i+1) || bodyN(t, ev) != i+1 {
			t.Fatalf("event %d of node a: %s", i, ev.JSON())
		}
	}
	u.mu.Lock()
	most := u.most
	u.mu.Unlock()
	if most != 1 {
		t.Errorf("%d nodes read the upstream at once, want 1", most)
	}
	holders := 0
	for _, n := range []*node{a, b} {
		if n.sup.logs["up"].lease.Held() {
			holders++
		}
	}
	if holders != 1 {
		t.Errorf("%d nodes hold the lease of up", holders)
	}

	// Ingest on b, with ids: a repeat is stored once and answered with the first's seq.
	app := b.sup.logs["in"]
	lg := &logAppender{c: app, r: b.sup.t().routers["in"], wait: 10 * time.Second}
	msgs := []*stream.Message{
		{Body: []byte(`"x"`), UpstreamID: "x", Time: time.Now()},
		{Body: []byte(`"y"`), UpstreamID: "y", Time: time.Now()},
		{Body: []byte(`"x again"`), UpstreamID: "x", Time: time.Now()},
		{Body: []byte(`"no id"`), Time: time.Now()},
	}
	seqs, err := lg.Append(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[1 2 1 3]" {
		t.Errorf("ingest gave seqs %v, want [1 2 1 3]", seqs)
	}
	sourcetest.Eventually(t, 10*time.Second, func() bool { return a.lastSeq("in") == 3 }, "node a reads the ingest: at %d", a.lastSeq("in"))
	hi, _ := a.sup.History(ctx, "in")
	if len(hi) != 3 || string(hi[0].Msg.Payload()) != `"x"` || string(hi[2].Msg.Payload()) != `"no id"` {
		t.Errorf("node a holds %d ingested messages", len(hi))
	}

	// Resume on b from up:10, older than its history of 20: replayed from the log, matched,
	// then joined to the router; live messages follow.
	p, err := predicate.Compile(`body.n % 3 == 0`, predicate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.sup.Subscribe(ctx, Request{Sources: []string{"up"}, Predicate: p, From: map[string]uint64{"up": 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if len(sub.Backlog) != 0 {
		t.Errorf("a replayed resume has a backlog of %d events", len(sub.Backlog))
	}
	u.publish(60)
	evs := collect(t, sub.Out, 20*time.Second, func(evs []*stream.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Seq() >= 360
	})
	want := 12
	for _, ev := range evs {
		if ev.Kind != stream.KindMessage || ev.Seq() != uint64(want) || bodyN(t, ev) != want {
			t.Fatalf("after %d: %s", want-3, ev.JSON())
		}
		want += 3
	}
	if want != 363 {
		t.Errorf("the replay ended at %d", want-3)
	}
}

// A resume from an id that the log never held is an id from elsewhere, as when alone; one
// older than the log is a history gap, then what the log holds.
func TestClusterResumeBounds(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	u := &upstream{next: 1}
	u.publish(50)
	n := startNode(t, urls, prefix, "a", 10, u)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return n.lastSeq("up") == 50 }, "at %d", n.lastSeq("up"))
	ctx := context.Background()

	sub, err := n.sup.Subscribe(ctx, Request{Sources: []string{"up"}, From: map[string]uint64{"up": 5000}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Backlog) != 11 || !strings.Contains(string(sub.Backlog[0].JSON()), `"reason":"unknown_id"`) {
		t.Errorf("resume from beyond the log: a backlog of %d, first %s", len(sub.Backlog), sub.Backlog[0].JSON())
	}
	sub.Close()

	// Purge the first 30 of the log: a resume from 5 misses 6..30.
	if err := purge(urls, prefix+"up", 31); err != nil {
		t.Fatal(err)
	}
	sub, err = n.sup.Subscribe(ctx, Request{Sources: []string{"up"}, From: map[string]uint64{"up": 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evs := collect(t, sub.Out, 20*time.Second, func(evs []*stream.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Seq() >= 50
	})
	if got := string(evs[0].JSON()); got != `{"type":"gap","source":"up","missed":25,"reason":"history"}` {
		t.Errorf("first event %s, want a gap of 25", got)
	}
	for i, ev := range evs[1:] {
		if ev.Seq() != uint64(31+i) {
			t.Fatalf("event %d: %s", i+1, ev.JSON())
		}
	}
}

// purge removes the messages of stream name below seq.
func purge(urls, name string, seq uint64) error {
	nc, err := natsgo.Connect(urls)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSequence(seq))
}

// When the node that reads a source upstream stops, the other takes over: its subscriptions
// see a status event naming the new leader, and the log goes on with no hole and no message
// twice (a message given back upstream is stored once, by its id).
func TestClusterLeaderMoves(t *testing.T) {
	for _, acks := range []bool{false, true} {
		t.Run(fmt.Sprint("acks=", acks), func(t *testing.T) { testLeaderMoves(t, acks) })
	}
}

func testLeaderMoves(t *testing.T, acks bool) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	u := &upstream{next: 1, acks: acks}
	u.publish(100)
	a := startNode(t, urls, prefix, "a", 1000, u)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return a.lastSeq("up") == 100 }, "a at %d", a.lastSeq("up"))
	b := startNode(t, urls, prefix, "b", 1000, u)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return b.lastSeq("up") == 100 }, "b at %d", b.lastSeq("up"))
	ctx := context.Background()
	sub, err := b.sup.Subscribe(ctx, Request{Sources: []string{"up"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if !a.sup.logs["up"].lease.Held() {
		t.Fatal("node a, the first, does not hold the lease")
	}
	a.stop()
	u.publish(100)
	evs := collect(t, sub.Out, 30*time.Second, func(evs []*stream.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Seq() >= 200
	})
	leader := false
	want := 101
	for _, ev := range evs {
		switch ev.Kind {
		case stream.KindStatus:
			leader = leader || strings.Contains(string(ev.JSON()), `"leader":"b"`)
		case stream.KindMessage:
			if ev.Seq() != uint64(want) || bodyN(t, ev) != want {
				t.Fatalf("after %d: %s", want-1, ev.JSON())
			}
			want++
		default:
			t.Errorf("unexpected %s", ev.JSON())
		}
	}
	if !leader {
		t.Errorf("no status event named b the leader")
	}
	if si := b.sup.Sources()[1]; si.Name != "up" || si.Leader != "b" || si.LogLastSeq != 200 || si.Lag != 0 {
		t.Errorf("GET /v1/sources of up: %+v", si.ClusterInfo)
	}
}

func withOptions(o Options, opts []func(*Options)) Options {
	for _, f := range opts {
		f(&o)
	}
	return o
}

// A node that starts fills its history from the log; a stream opened meanwhile waits for the
// fill, and starts live after it, not with the fill taken for live messages; the node is not
// ready until then.
func TestClusterLiveStreamSkipsTheFill(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	u := &upstream{next: 1}
	u.publish(3000)
	a := startNode(t, urls, prefix, "a", 5000, u)
	sourcetest.Eventually(t, 30*time.Second, func() bool { return a.lastSeq("up") == 3000 }, "a at %d", a.lastSeq("up"))
	b := startNode(t, urls, prefix, "b", 5000, u, func(o *Options) { o.FeedDelay = 300 * time.Microsecond })
	if ok, _ := b.sup.Ready(); ok {
		t.Error("a node filling its history says it is ready")
	}
	ctx := context.Background()
	sub, err := b.sup.Subscribe(ctx, Request{Sources: []string{"up"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if got := b.lastSeq("up"); got < 3000 {
		t.Errorf("the stream began with the node at %d, before the end of its fill", got)
	}
	if ok, down := b.sup.Ready(); !ok {
		t.Errorf("filled, the node is not ready: %v", down)
	}
	u.publish(5)
	evs := collect(t, sub.Out, 20*time.Second, func(evs []*stream.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Seq() >= 3005
	})
	for i, ev := range evs {
		if ev.Seq() != uint64(3001+i) {
			t.Fatalf("event %d of a live stream: %s", i, ev.JSON())
		}
	}
}
