package main_test

// Several nodes (issue 18; API.md, "Several nodes"): three streamux processes on ports of their
// own share one replicated log per source in NATS JetStream. The tests run the real binary
// against real servers: the machine's nats-server on 127.0.0.1:4222, a cluster of three
// nats-servers in the test's process where a server is killed, and RabbitMQ where an upstream
// must redeliver.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/natstest"
	"github.com/streamux/streamux/internal/sourcetest"
)

// The sources every node of most tests has.
const (
	demoSource   = "  - {name: demo, type: demo, rate: 100, payload: rich}\n"
	eventsSource = "  - {name: events, type: http}\n"
)

// oneURL is a clusterSpec.urls that gives every node the same servers.
func oneURL(u string) func(int) string { return func(int) string { return u } }

// bigQueues lets a test's clients take a burst without being cut as slow consumers.
const bigQueues = "limits: {queue_events: 200000, queue_bytes: 268435456}\n"

// 1. Every node serves the same bytes for each id: the event's JSON (key, headers, body, time)
// is the same whether the node read it from its history or replayed it from the log, and
// whichever node took it in.
func TestClusterSameBytesOnEveryNode(t *testing.T) {
	nats := sourcetest.RequireJetStream(t)
	nodes, _ := startNodes(t, clusterSpec{
		urls:    oneURL(nats),
		sources: demoSource + eventsSource,
		// Node 3 keeps 10 messages: what it serves of the older ones comes from the log.
		extra: func(i int) string {
			if i == 2 {
				return "history: {size: 10}\n"
			}
			return ""
		},
	})
	// Each kind of body, key and header, ingested on every node.
	var ids []string
	ids = append(ids, nodes[0].mustIngest("events", "key=k1&header.tenant=acme",
		`{"a":1,"b":[1,2.50,{"c":null}],"u":"\u00e9\u2028"}`, `plain text é`, `  {"spaced": true}  `, `[1, 2 ,3]`)...)
	ids = append(ids, nodes[1].mustIngest("events", "envelope=true",
		`{"key":"k2","headers":{"X-Mixed":"v","b":"\u0000"},"body":{"x":"y"}}`,
		`{"body":"AAEC/w==","body_encoding":"base64"}`,
		`{"key":"","body":"a string"}`)...)
	ids = append(ids, nodes[2].mustIngest("events", "", `{"n":3}`)...)
	for i, id := range ids {
		if want := fmt.Sprintf("events:%d", i+1); id != want {
			t.Fatalf("ingest answered ids %v, want events:1 to events:%d", ids, len(ids))
		}
	}
	// Clients of every node read every id of both sources from the first: the demo's older
	// ones from the log on node 3, the newer from its history, live ones as they come.
	eventually(t, 20*time.Second, "node 3 has read 50 messages of the demo", func() bool {
		return nodes[2].mustSource("demo").Counters.LastSeq >= 50
	})
	demoLast := nodes[0].mustSource("demo").Counters.LastSeq + 30
	type read struct{ demo, events *reader }
	reads := make([]read, len(nodes))
	for i, n := range nodes {
		reads[i] = read{
			demo:   n.openReader(t, "source=demo&from=demo:0", false, ""),
			events: n.openReader(t, "source=events&from=events:0", false, ""),
		}
	}
	byID := map[string][]byte{}
	for i, n := range nodes {
		reads[i].demo.waitSeq(t, demoLast, 20*time.Second)
		reads[i].events.waitSeq(t, uint64(len(ids)), 10*time.Second)
		demoEvs, _ := reads[i].demo.snapshot()
		eventsEvs, _ := reads[i].events.snapshot()
		ms := append(checkRun(t, n.name+" demo", demoEvs, 1, demoLast, true),
			checkRun(t, n.name+" events", eventsEvs, 1, uint64(len(ids)), false)...)
		for _, ev := range ms {
			first, ok := byID[ev.ID]
			switch {
			case !ok:
				byID[ev.ID] = ev.Raw
			case !bytes.Equal(first, ev.Raw):
				t.Errorf("%s serves %s as\n  %s\nnode n1 as\n  %s", n.name, ev.ID, ev.Raw, first)
			}
		}
	}
	// The bodies are the ones sent, whichever node took them in.
	for id, want := range map[string]string{
		"events:1": `"key":"k1","time":`, "events:2": `"body":"plain text é"`,
		"events:5": `"key":"k2",`, "events:7": `"body":"a string"`,
		"events:6": `"body":"AAEC/w==","body_encoding":"base64"`, "events:8": `"body":{"n":3}`,
	} {
		if !bytes.Contains(byID[id], []byte(want)) {
			t.Errorf("%s is %s, want it to hold %s", id, byID[id], want)
		}
	}
	var ev cevent
	if err := json.Unmarshal(byID["events:5"], &ev); err != nil || len(ev.Headers) != 2 || ev.Headers["X-Mixed"] != "v" || ev.Headers["b"] != "\x00" || string(ev.Body) != `{"x":"y"}` {
		t.Errorf("events:5 is %s (%v)", byID["events:5"], err)
	}
}

// 2. A message ingested on node 2 reaches the clients of nodes 1 and 3 under the id node 2
// answered; an Idempotency-Key sent again names the same message, stored once.
func TestClusterIngestReachesEveryNode(t *testing.T) {
	nats := sourcetest.RequireJetStream(t)
	nodes, _ := startNodes(t, clusterSpec{urls: oneURL(nats), sources: eventsSource})
	r1 := nodes[0].openReader(t, "source=events", false, "")
	r3 := nodes[2].openReader(t, "source=events", false, "")

	ids := nodes[1].mustIngest("events", "", `{"from":"node 2","i":1}`, `{"from":"node 2","i":2}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keyed []string
	for range 2 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, nodes[1].url("/v1/sources/events/messages"), strings.NewReader(`{"once":true}`))
		req.Header.Set("Idempotency-Key", "order-42")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var a ingestAnswer
		err = jsonDecode(resp, &a)
		if err != nil || resp.StatusCode != http.StatusOK || len(a.IDs) != 1 {
			t.Fatalf("ingest with an Idempotency-Key: %s %+v %v", resp.Status, a, err)
		}
		keyed = append(keyed, a.IDs[0])
	}
	if keyed[0] != keyed[1] {
		t.Errorf("one Idempotency-Key sent twice got ids %v, want one id", keyed)
	}
	ids = append(ids, keyed[0])
	ids = append(ids, nodes[1].mustIngest("events", "", `{"from":"node 2","i":3}`)...)
	if want := []string{"events:1", "events:2", "events:3", "events:4"}; !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	for _, r := range []*reader{r1, r3} {
		r.waitSeq(t, 4, 10*time.Second)
		evs, _ := r.snapshot()
		ms := checkRun(t, r.name, evs, 1, 4, false)
		for i, want := range []string{`{"from":"node 2","i":1}`, `{"from":"node 2","i":2}`, `{"once":true}`, `{"from":"node 2","i":3}`} {
			if ms[i].ID != ids[i] || string(ms[i].Body) != want {
				t.Errorf("%s: %s %s, want %s %s", r.name, ms[i].ID, ms[i].Body, ids[i], want)
			}
		}
	}
	// Nothing more: the second request with the key stored nothing.
	time.Sleep(300 * time.Millisecond)
	for _, r := range []*reader{r1, r3} {
		if ms := r.messages(); len(ms) != 4 {
			t.Errorf("%s: %d messages, want 4: %s", r.name, len(ms), summary(ms))
		}
	}
}

// jsonDecode reads resp's JSON body into v and closes it.
func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// 6. All nodes stopped and started again: seq goes on where it stopped, for an upstream
// source and for ingest, and a client resumes from an id of before the restart with no gap.
func TestClusterRestartAllSeqContinues(t *testing.T) {
	nats := sourcetest.RequireJetStream(t)
	nodes, prefix := startNodes(t, clusterSpec{urls: oneURL(nats), sources: demoSource + eventsSource})
	v := viewJetStream(t, nats, prefix)
	if ids := nodes[0].mustIngest("events", "", `{"run":1,"i":1}`, `{"run":1,"i":2}`, `{"run":1,"i":3}`); ids[2] != "events:3" {
		t.Fatalf("ids %v, want events:1 to events:3", ids)
	}
	eventually(t, 10*time.Second, "the demo's log holds 20 messages", func() bool { return v.lastSeq("demo") >= 20 })
	for _, n := range nodes {
		n.stop()
	}
	demoLast := v.lastSeq("demo")

	for _, n := range nodes {
		n.launch()
	}
	for _, n := range nodes {
		n.waitHealthy()
	}
	if ids := nodes[1].mustIngest("events", "", `{"run":2,"i":1}`); ids[0] != "events:4" {
		t.Errorf("the first message ingested after the restart is %s, want events:4", ids[0])
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, n.name+" shows the log of events", func() bool {
			s := n.mustSource("events")
			return s.LogFirstSeq != nil && *s.LogFirstSeq == 1 && *s.LogLastSeq == 4 && s.Counters.LastSeq == 4
		})
	}
	demo := nodes[2].openReader(t, fmt.Sprintf("source=demo&from=demo:%d", demoLast-5), false, "")
	events := nodes[0].openReader(t, "source=events&from=events:1", false, "")
	demo.waitSeq(t, demoLast+10, 15*time.Second)
	events.waitSeq(t, 4, 10*time.Second)
	evs, _ := demo.snapshot()
	checkRun(t, "the demo across the restart", evs, demoLast-4, demoLast+10, true)
	evs, _ = events.snapshot()
	ms := checkRun(t, "events across the restart", evs, 2, 4, false)
	if string(ms[2].Body) != `{"run":2,"i":1}` {
		t.Errorf("events:4 is %s", ms[2].Raw)
	}
	t.Logf("the demo's log ended at %d before the restart; the next run went on at %d", demoLast, demoLast+1)
}

// 8. A node that reads the log slowly (the STREAMUX_TEST_FEED_DELAY hook), asked to resume
// from an id that the log holds and it has not read yet, waits, then serves exactly what
// follows the id, and the live messages after.
func TestClusterSlowNodeResumesAhead(t *testing.T) {
	nats := sourcetest.RequireJetStream(t)
	nodes, _ := startNodes(t, clusterSpec{
		urls: oneURL(nats), sources: eventsSource,
		env: func(i int) []string {
			if i == 2 {
				return []string{"STREAMUX_TEST_FEED_DELAY=2ms"}
			}
			return nil
		},
	})
	const total = 1000
	lines := make([]string, 100)
	for b := range total / 100 {
		for i := range lines {
			lines[i] = fmt.Sprintf(`{"n":%d}`, b*100+i)
		}
		nodes[0].mustIngest("events", "", lines...)
	}
	read := nodes[2].mustSource("events")
	from := read.Counters.LastSeq + 300
	if from > total-100 {
		t.Fatalf("node 3 has read %d of %d messages, delayed 2ms each: too fast to test", read.Counters.LastSeq, total)
	}
	start := time.Now()
	r := nodes[2].openReader(t, fmt.Sprintf("source=events&from=events:%d", from), false, "")
	r.waitSeq(t, from+1, 15*time.Second)
	first := time.Since(start)
	// GET /v1/sources says how far behind the log node 3 is (its view of the log's end may be
	// a second old).
	var lag uint64
	eventually(t, 10*time.Second, "node 3 says it lags the log", func() bool {
		s := nodes[2].mustSource("events")
		if s.Lag == nil || s.LogLastSeq == nil {
			t.Fatalf("GET /v1/sources on node 3 shows no lag or log_last_seq: %+v", s)
		}
		lag = *s.Lag
		return *s.LogLastSeq == total && lag >= 100
	})
	r.waitSeq(t, total, 15*time.Second)
	all := time.Since(start)
	// Live messages after the log's end: they reach the client once node 3 reads them.
	nodes[1].mustIngest("events", "", `{"n":1000}`, `{"n":1001}`)
	r.waitSeq(t, total+2, 15*time.Second)
	// Once node 3 has read the log up to them, the client's stream joins its router: the
	// messages after come from there, with no hole or duplicate at the seam.
	eventually(t, 30*time.Second, "node 3 reads the log to its end", func() bool {
		return nodes[2].mustSource("events").Counters.LastSeq >= total+2
	})
	caughtUp := time.Since(start)
	eventually(t, 10*time.Second, "node 3 says it does not lag the log", func() bool {
		s := nodes[2].mustSource("events")
		return *s.Lag == 0 && *s.LogLastSeq == total+2
	})
	for i := range 3 {
		nodes[i].mustIngest("events", "", fmt.Sprintf(`{"n":%d}`, total+2+i))
		time.Sleep(50 * time.Millisecond)
	}
	r.waitSeq(t, total+5, 15*time.Second)
	time.Sleep(200 * time.Millisecond) // a duplicate would come now
	evs, _ := r.snapshot()
	if len(evs) != total+5-int(from) {
		t.Errorf("%d events, want %d: %s", len(evs), total+5-int(from), summary(evs))
	}
	for _, ev := range checkRun(t, "node 3 resuming ahead of itself", evs, from+1, total+5, false) {
		if n := bodyN(t, ev); uint64(n) != ev.Seq-1 {
			t.Fatalf("%s holds n %d", ev.ID, n)
		}
	}
	t.Logf("node 3 had read %d of %d messages when asked for events:%d (it said it lagged by %d); the first message came after %v, the last of the log after %v; node 3 read the log to its end after %v",
		read.Counters.LastSeq, total, from, lag, first.Round(time.Millisecond), all.Round(time.Millisecond), caughtUp.Round(time.Millisecond))
}

// burst ingests total messages {"n":N} into source on node n, paced at rate messages a second,
// on a goroutine of its own: a batch of at least batch messages whenever that many are due,
// more (up to 8 batches) when the requests fall behind the pace.
type burst struct {
	done  chan struct{}
	mu    sync.Mutex
	sent  int
	err   error
	took  time.Duration
	ended bool
}

func startBurst(t *testing.T, n *cnode, source string, total, batch int, rate float64) *burst {
	b := &burst{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // ends when every message is sent, or ctx does; the cleanup waits for it
		defer close(b.done)
		start := time.Now()
		for sent := 0; sent < total; {
			if ahead := time.Duration(float64(sent+batch)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
			due := int(time.Since(start).Seconds() * rate)
			k := min(max(due-sent, batch), 8*batch, total-sent)
			lines := make([]string, k)
			for i := range lines {
				lines[i] = fmt.Sprintf(`{"n":%d}`, sent+i)
			}
			a, code, err := n.ingest(ctx, source, "", lines)
			if err == nil && (code != http.StatusOK || a.Accepted != k) {
				err = fmt.Errorf("ingest: %d %+v", code, a)
			}
			b.mu.Lock()
			if err != nil {
				b.err = err
				b.mu.Unlock()
				return
			}
			sent += k
			b.sent = sent
			b.mu.Unlock()
		}
		b.mu.Lock()
		b.took, b.ended = time.Since(start), true
		b.mu.Unlock()
	}()
	t.Cleanup(func() { cancel(); <-b.done })
	return b
}

// wait waits for the burst's end and returns how long it took, failing the test if an ingest
// failed.
func (b *burst) wait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the burst did not end in 60s")
	}
	if b.err != nil {
		t.Fatalf("burst: %v", b.err)
	}
	return b.took
}

// state is how many messages the burst sent so far and whether it ended.
func (b *burst) state() (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent, b.ended
}

// 5. A Last-Event-ID taken on node 1 resumes on node 3 over SSE, from an id older than node 3's
// history, with no hole or duplicate, during a burst of 5,000 messages a second: node 3
// replays from the log, then joins its router.
func TestClusterSSEResumeOnAnotherNode(t *testing.T) {
	nats := sourcetest.RequireJetStream(t)
	nodes, _ := startNodes(t, clusterSpec{
		urls: oneURL(nats), sources: eventsSource,
		extra: func(i int) string {
			if i == 2 {
				return bigQueues + "history: {size: 200}\n"
			}
			return bigQueues
		},
	})
	const total = 12000
	sse1 := nodes[0].openReader(t, "source=events", true, "")
	b := startBurst(t, nodes[1], "events", total, 100, 5000)

	// The client of node 1 reads 2,000 messages and goes; its last id is where it resumes.
	sse1.waitSeq(t, 2000, 30*time.Second)
	sse1.stop()
	evs, _ := sse1.snapshot()
	ms1 := checkRun(t, "node 1", evs, 1, evs[len(evs)-1].Seq, false)
	last := ms1[len(ms1)-1]
	if last.SSEID != last.ID {
		t.Fatalf("SSE id %q for %s", last.SSEID, last.ID)
	}
	// Node 3's history has moved past it.
	eventually(t, 30*time.Second, "node 3 reads 1,000 messages past the id", func() bool {
		return nodes[2].mustSource("events").Counters.LastSeq > last.Seq+1000
	})
	sent, ended := b.state()
	if ended {
		t.Fatalf("the burst ended before the resume on node 3: the machine is too slow for this test")
	}
	sse3 := nodes[2].openReader(t, "source=events", true, last.SSEID)
	// And with a predicate: the replay matches as the router does.
	sevenths := nodes[2].openReader(t, "source=events&where="+url.QueryEscape("body.n % 7 == 0"), true, last.SSEID)
	took := b.wait(t)
	sse3.waitSeq(t, total, 60*time.Second)
	lastSeventh := uint64((total-1)/7*7 + 1)
	sevenths.waitSeq(t, lastSeventh, 60*time.Second)
	time.Sleep(200 * time.Millisecond) // a duplicate would come now
	evs, _ = sse3.snapshot()
	ms3 := checkRun(t, "node 3 resuming from node 1's Last-Event-ID "+last.SSEID, evs, last.Seq+1, total, false)
	if len(evs) != len(ms3) {
		t.Errorf("node 3 sent %d events after the last message: %s", len(evs)-len(ms3), summary(evs[len(ms3):]))
	}
	evs, _ = sevenths.snapshot()
	want := (last.Seq + 6) / 7 * 7 // the first n after the id that matches
	for _, ev := range evs {
		if n := uint64(bodyN(t, ev)); ev.Type != "message" || n != want || ev.Seq != n+1 {
			t.Fatalf("node 3 with a predicate: %s, want m-%d: %s", ev.Raw, want, summary(evs))
		}
		want += 7
	}
	if want != uint64(total-1)/7*7+7 {
		t.Errorf("node 3 with a predicate: up to m-%d, want up to m-%d", want-7, uint64(total-1)/7*7)
	}
	for _, ms := range [][]cevent{ms1, ms3} {
		for _, ev := range ms {
			if n := bodyN(t, ev); uint64(n) != ev.Seq-1 || ev.SSEID != ev.ID {
				t.Fatalf("%s (SSE id %q) holds n %d", ev.ID, ev.SSEID, n)
			}
		}
	}
	t.Logf("%d messages in %v (%.0f/s); node 1's client left at %s, node 3's resumed from it when %d had been sent",
		total, took.Round(time.Millisecond), total/took.Seconds(), last.ID, sent)
}

// leaseTTL and leasePoll are the cluster tests' lease_ttl and lease_poll.
const (
	leaseTTL  = time.Second
	leasePoll = 50 * time.Millisecond
)

// byName is the node called name, nil for none.
func byName(nodes []*cnode, name string) *cnode {
	for _, n := range nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// waitLeader waits until the servers say a node holds source's lease, every node says it is
// that one, and the log grows: the holder appends. It returns the holder.
func waitLeader(t *testing.T, nodes []*cnode, v *jsView, source string) *cnode {
	t.Helper()
	var holder string
	eventually(t, 20*time.Second, "a node holds the lease of "+source+" and every node says so", func() bool {
		h, _, err := v.lease(source)
		if err != nil || h == "" {
			return false
		}
		holder = h
		for _, n := range nodes {
			s, err := n.source(source)
			if err != nil || s.Leader != h {
				return false
			}
		}
		return true
	})
	last := v.lastSeq(source)
	eventually(t, 20*time.Second, "the log of "+source+" grows", func() bool { return v.lastSeq(source) > last })
	n := byName(nodes, holder)
	if n == nil {
		t.Fatalf("the lease of %s is held by %q, no node of the test", source, holder)
	}
	return n
}

// watchConsumers samples the queue's consumers every 20ms until stop (or the test's end), and
// returns the most seen.
func watchConsumers(t *testing.T, q *rabbitQueue) (stop func() int) {
	done := make(chan struct{})
	ended := make(chan struct{})
	m := 0
	go func() { // ends with stop, which waits for it
		defer close(ended)
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, c, err := q.state(); err == nil {
				m = max(m, c)
			}
		}
	}()
	once := sync.OnceValue(func() int {
		close(done)
		<-ended
		return m
	})
	t.Cleanup(func() { once() })
	return once
}

// 3. SIGKILL of the node that reads a RabbitMQ queue (holds the source's lease), 20 times in a
// row, the victim started again each time: exactly one other node takes over within the lease's
// TTL and a poll (with a margin for a loaded machine), and the log holds every message
// published, once each, under consecutive ids, although RabbitMQ redelivers what the victim
// had not acknowledged.
func TestClusterKillLeaseHolder(t *testing.T) {
	nats := sourcetest.RequireJetStream(t)
	q := declareRabbitQueue(t)
	nodes, prefix := startNodes(t, clusterSpec{urls: oneURL(nats), sources: q.sourceYAML("rabbit")})
	v := viewJetStream(t, nats, prefix)
	pub := startPublisher(t, q, 5*time.Millisecond)
	holder := waitLeader(t, nodes, v, "rabbit")
	mostConsumers := watchConsumers(t, q)

	const kills = 20
	var takeovers, flows []time.Duration
	var redelivered uint64 // as the holders counted them, up to just before they were killed
	for round := range kills {
		victim := holder
		if s, err := victim.source("rabbit"); err == nil {
			redelivered += s.Adapter.Redelivered
		}
		victim.kill()
		killed := time.Now()
		victim.launch() // 3 nodes again, as soon as can be
		// A renewal the victim sent as it died has landed by now; the next revision is a
		// new holder's.
		time.Sleep(100 * time.Millisecond)
		_, rev, err := v.lease("rabbit")
		if err != nil {
			t.Fatal(err)
		}
		seq := v.lastSeq("rabbit")
		var next string
		eventually(t, 15*time.Second, fmt.Sprintf("round %d: a node takes the lease over from %s", round, victim.name), func() bool {
			h, r, err := v.lease("rabbit")
			if err == nil && h != "" && r != rev {
				next = h
				return true
			}
			return false
		})
		takeover := time.Since(killed)
		eventually(t, 15*time.Second, fmt.Sprintf("round %d: the log grows after the takeover by %s", round, next), func() bool {
			return v.lastSeq("rabbit") > seq
		})
		flow := time.Since(killed)
		takeovers, flows = append(takeovers, takeover), append(flows, flow)
		if limit := leaseTTL + leasePoll + 4*time.Second; takeover > limit {
			t.Errorf("round %d: %s took the lease over %v after the kill, more than %v", round, next, takeover, limit)
		}
		victim.waitHealthy()
		holder = waitLeader(t, nodes, v, "rabbit")
		if holder.name != next {
			t.Errorf("round %d: %s took the lease over, then %s held it", round, next, holder.name)
		}
		eventually(t, 10*time.Second, "one consumer on the queue", func() bool {
			_, c, err := q.state()
			return err == nil && c == 1
		})
	}
	published := pub.stop(t)
	if m := mostConsumers(); m > 1 {
		t.Errorf("the queue had %d consumers at once: more than one node read it", m)
	}
	redelivered += holder.mustSource("rabbit").Adapter.Redelivered
	stored := checkRabbitLog(t, holder, v, q, "rabbit", published)
	t.Logf("RabbitMQ redelivered at least %d messages; %d of them were not in the log yet, the others the log stored once", redelivered, stored)
	slices.Sort(takeovers)
	slices.Sort(flows)
	t.Logf("%d kills, %d messages published: the lease was taken over after %v (median; min %v, max %v), the log grew again after %v (median; max %v); lease_ttl %v, lease_poll %v",
		kills, published, takeovers[kills/2].Round(time.Millisecond), takeovers[0].Round(time.Millisecond), takeovers[kills-1].Round(time.Millisecond),
		flows[kills/2].Round(time.Millisecond), flows[kills-1].Round(time.Millisecond), leaseTTL, leasePoll)
}

// 4. SIGSTOP of the node that reads a RabbitMQ queue, past its lease, then SIGCONT: another
// node takes the lease over meanwhile; the paused one, resumed, appends nothing more (its
// lease's clock, or the log's fencing, refuses it), lets go, and follows the new holder; the
// log holds every message published once, under consecutive ids.
func TestClusterPausedHolderLetsGo(t *testing.T) {
	nats := sourcetest.RequireJetStream(t)
	q := declareRabbitQueue(t)
	nodes, prefix := startNodes(t, clusterSpec{urls: oneURL(nats), sources: q.sourceYAML("rabbit")})
	v := viewJetStream(t, nats, prefix)
	pub := startPublisher(t, q, 5*time.Millisecond)
	paused := waitLeader(t, nodes, v, "rabbit")
	// Let some messages wait for the paused node's acknowledgement: RabbitMQ gives them to
	// another node only once the paused one has let them go.
	time.Sleep(200 * time.Millisecond)
	// A client of each node, from here on.
	from := v.lastSeq("rabbit")
	var readers []*reader
	for _, n := range nodes {
		readers = append(readers, n.openReader(t, fmt.Sprintf("source=rabbit&from=rabbit:%d", from), false, ""))
	}
	logged := len(paused.stderr.String())
	paused.signal(syscall.SIGSTOP)
	stopped := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = paused.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	var next string
	eventually(t, 15*time.Second, "another node takes the lease over from the paused "+paused.name, func() bool {
		h, _, err := v.lease("rabbit")
		if err == nil && h != "" && h != paused.name {
			next = h
			return true
		}
		return false
	})
	takeover := time.Since(stopped)
	seq := v.lastSeq("rabbit")
	eventually(t, 15*time.Second, "the log grows after the takeover by "+next, func() bool { return v.lastSeq("rabbit") > seq+50 })
	paused.signal(syscall.SIGCONT)
	resumed = true

	// The resumed node follows the new holder, which keeps the lease; one node reads the queue.
	eventually(t, 10*time.Second, paused.name+" follows "+next, func() bool {
		s, err := paused.source("rabbit")
		return err == nil && s.Leader == next && s.State == "up"
	})
	eventually(t, 10*time.Second, "one consumer on the queue", func() bool {
		_, c, err := q.state()
		return err == nil && c == 1
	})
	for range 10 {
		if h, _, err := v.lease("rabbit"); err != nil || h != next {
			t.Fatalf("after %s resumed, the lease is held by %q (%v), want %s", paused.name, h, err, next)
		}
		time.Sleep(100 * time.Millisecond)
	}
	seq = v.lastSeq("rabbit")
	eventually(t, 15*time.Second, "the log grows", func() bool { return v.lastSeq("rabbit") > seq+50 })
	published := pub.stop(t)
	stored := checkRabbitLog(t, byName(nodes, next), v, q, "rabbit", published)
	// Every client read the log as it is, through the change of holder, and was told of it.
	last := v.lastSeq("rabbit")
	for i, r := range readers {
		r.waitSeq(t, last, 20*time.Second)
		evs, _ := r.snapshot()
		checkRun(t, nodes[i].name+"'s client", evs, from+1, last, true)
		var statuses []string
		for _, ev := range evs {
			if ev.Type != "status" {
				continue
			}
			statuses = append(statuses, string(ev.Raw))
			// Another node reads the source now: it did not stop, nor fail (API.md: a
			// change of leader is a status event, state unchanged, leader given).
			// The new leader's own first connection upstream is not a change of state
			// either: the source was up and is up under it.
			if ev.State == "stopped" || ev.State == "reconnecting" || ev.State == "failed" ||
				(ev.Leader == next && ev.State != "up") || (i == slices.IndexFunc(nodes, func(n *cnode) bool { return n.name == next }) && ev.State == "connecting") {
				t.Errorf("%s's client was told %s", nodes[i].name, ev.Raw)
			}
		}
		t.Logf("%s's client was told:\n  %s", nodes[i].name, strings.Join(statuses, "\n  "))
	}
	var said []string
	for _, line := range strings.Split(paused.stderr.String()[logged:], "\n") {
		if strings.Contains(line, "rabbit") {
			said = append(said, line)
		}
	}
	t.Logf("%s paused: %s took the lease over after %v; %d messages published, %d of them stored as RabbitMQ redelivered them; %s said once resumed:\n%s",
		paused.name, next, takeover.Round(time.Millisecond), published, stored, paused.name, strings.Join(said, "\n"))
}

// 7. Killing the NATS server that leads a source's stream (three servers, three replicas):
// ingest and delivery go on. A request that fails while the servers elect another leader is
// sent again, to another node, with the same ids (envelope "id"), which the log stores once;
// every node's client reads every message once, in the order ingested, under the same id.
func TestClusterStreamLeaderKilled(t *testing.T) {
	tc := natstest.Start(t, 3)
	nodes, prefix := startNodes(t, clusterSpec{urls: tc.URLsFrom, replicas: 3, sources: eventsSource, extra: func(int) string { return bigQueues }})
	v := viewJetStream(t, tc.URLsFrom(0), prefix)
	var readers []*reader
	for _, n := range nodes {
		readers = append(readers, n.openReader(t, "source=events", false, ""))
	}
	leaderOf := func() string {
		var leader string
		eventually(t, 30*time.Second, "the servers name the stream's leader", func() bool {
			info, err := v.streamInfo("events")
			if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
				return false
			}
			leader = info.Cluster.Leader
			return true
		})
		return leader
	}
	leaderOf()

	// The ingester: batches of 10 messages every 20ms, each node in turn, a failed batch
	// sent again to the next node until it is stored.
	type success struct {
		at  time.Time
		end int // messages 0..end-1 are stored
	}
	var (
		mu        sync.Mutex
		successes []success
		failures  []string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // ends with stop; waited for below and by the cleanup
		defer close(done)
		const batch = 10
		lines := make([]string, batch)
		next := 0
		for n := 0; ; n += batch {
			for i := range lines {
				lines[i] = fmt.Sprintf(`{"id":"m-%d","body":{"n":%d}}`, n+i, n+i)
			}
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				node := nodes[next%len(nodes)]
				next++
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				a, code, err := node.ingest(ctx, "events", "envelope=true", lines)
				cancel()
				mu.Lock()
				if err == nil && code == http.StatusOK && a.Accepted == batch {
					successes = append(successes, success{time.Now(), n + batch})
					mu.Unlock()
					break
				}
				failures = append(failures, fmt.Sprintf("%s: %d %+v %v", node.name, code, a, err))
				mu.Unlock()
			}
		}
	}()
	stopIngest := sync.OnceFunc(func() { close(stop); <-done })
	t.Cleanup(stopIngest)
	stored := func() (int, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if len(successes) == 0 {
			return 0, time.Time{}
		}
		s := successes[len(successes)-1]
		return s.end, s.at
	}
	eventually(t, 30*time.Second, "200 messages ingested", func() bool { n, _ := stored(); return n >= 200 })

	leader := leaderOf()
	before, _ := stored()
	tc.Kill(tc.Index(leader))
	killed := time.Now()
	eventually(t, 60*time.Second, "500 messages ingested after the kill", func() bool { n, _ := stored(); return n >= before+500 })
	stopIngest()
	total, _ := stored()

	mu.Lock()
	var resumedAfter, longest time.Duration
	prev := killed
	for _, s := range successes {
		if s.at.Before(killed) {
			continue
		}
		if resumedAfter == 0 {
			resumedAfter = s.at.Sub(killed)
		}
		longest = max(longest, s.at.Sub(prev))
		prev = s.at
	}
	nFailures := len(failures)
	firstFailures := failures[:min(len(failures), 5)]
	mu.Unlock()

	// Every client reads the log whole, the same on every node: each message once, under
	// the same id everywhere.
	var order []int // the n of each seq, as node 1 serves it
	for i, r := range readers {
		r.waitSeq(t, uint64(total), 60*time.Second)
		evs, _ := r.snapshot()
		seen := make(map[int]bool, total)
		for k, ev := range checkRun(t, nodes[i].name+"'s client", evs, 1, uint64(total), true) {
			n := bodyN(t, ev)
			if seen[n] {
				t.Fatalf("%s's client: m-%d twice, the second time as %s", nodes[i].name, n, ev.ID)
			}
			seen[n] = true
			if i == 0 {
				order = append(order, n)
			} else if order[k] != n {
				t.Fatalf("%s's client: %s holds m-%d, node n1's m-%d", nodes[i].name, ev.ID, n, order[k])
			}
		}
	}
	// The log's order is the order of ingest, but where a request was refused in part
	// (Log.Append: "the order of one Append holds except across a leader change").
	var moved []string
	for k, n := range order {
		if n != k {
			moved = append(moved, fmt.Sprintf("events:%d=m-%d", k+1, n))
		}
	}
	if len(moved) > 0 {
		t.Logf("%d messages are not in the order of ingest: %v", len(moved), moved[:min(len(moved), 20)])
	}
	info, err := v.streamInfo("events")
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != uint64(total) {
		t.Errorf("the log holds %d messages, %d were ingested", info.State.LastSeq, total)
	}
	t.Logf("killed %s, the stream's leader, after %d messages; %s leads it now; the first ingest after the kill was stored %v after it, the longest wait between two was %v; %d requests failed and were sent again (first: %v); %d messages in all",
		leader, before, info.Cluster.Leader, resumedAfter.Round(time.Millisecond), longest.Round(time.Millisecond), nFailures, firstFailures, total)
}
