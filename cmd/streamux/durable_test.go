package main_test

// Issue 19, item 5: each durable source, in the real binary, stopped (SIGTERM) or killed
// (SIGKILL) in the middle of a stream, with more published while it is down, loses nothing
// across the restart. The brokers of these tests are the machine's (and kfake in this process
// for Kafka); durable_brokers_test.go makes their private streams and publishes into them.
//
// How the test sees every message the source passed on, including those routed while no
// client was connected: a client reads the first run's stream from its start to its end (its
// last id), and then resumes from that id on the second run. The resume gives the second run's
// whole history (every message it numbered, whether or not a client was there), after a `gap`
// with reason `restart` that counts what the first run numbered after the client's last id
// (exactly, after a clean stop: those are messages the source passed on once, routed after the
// client's stream had closed). So after SIGTERM the accounting is exact: the first run's
// messages 0…a, then `missed` numbered and unseen, then the second run's messages from
// a+1+missed to the end, in order, none twice.
//
// After SIGKILL the gap also counts the numbers the killed run had set aside and not used, so
// it says nothing; the second run starts from where the source had acknowledged: what the
// first run had taken without acknowledging comes again (the duplicates, bounded by the
// source's in-flight window), and what it had acknowledged and held in memory, not yet written
// to the client, is gone with the process (as README says of a crash: at most what the router
// had accepted, 1,024 a source, and the events queued for clients).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/router"
)

// The numbers of one case: before messages published at a steady pace while the first run
// reads them, the signal once the client has hold of them, during more published while
// nothing runs. Mosquitto queues at most 1,000 messages for a session whose client is away
// (max_queued_messages): what is left of before after the signal and during stay under it.
const (
	durableBefore = 1000
	durableHold   = 500
	durableDuring = 200
	durableTotal  = durableBefore + durableDuring
	// durableBurst is how many the publisher sends at once, then pauses a millisecond: ahead
	// of the source, so that a signal finds it with messages in flight.
	durableBurst = 50
)

// durableWait bounds each wait of these tests: the machine is shared, and the binary runs
// under the race detector.
const durableWait = 90 * time.Second

func TestDurableAcrossRestart(t *testing.T) {
	for _, b := range durableBrokers {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			t.Run(b.name+"/"+sigName(sig), func(t *testing.T) {
				t.Parallel()
				testDurableRestart(t, b.new(t), sig)
			})
		}
	}
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}

// durableSource is a durable source's private stream on its server.
type durableSource struct {
	// yaml is the source's entry in sources:, named "src", less the leading "  - ".
	yaml string
	// publish sends the messages numbered first to first+n-1, in order, and returns once the
	// server has them. Each body is JSON with "i" the number.
	publish func(ctx context.Context, first, n int) error
	// inFlight bounds what a killed streamux had taken without the server knowing: the
	// duplicates a kill may cause.
	inFlight int
	// lateAfterKill says that what a killed streamux had taken without acknowledging may come
	// after later messages (JetStream delivers it again only after ack_wait).
	lateAfterKill bool
	// settle is how long the second run is watched, after a kill, for such late messages.
	settle time.Duration
}

// durableBroker makes a durableSource for a test, skipping (or failing with CI=true) when its
// server is missing; cleanups remove what it made on the server.
type durableBroker struct {
	name string
	new  func(t *testing.T) durableSource
}

func testDurableRestart(t *testing.T, b durableSource, sig syscall.Signal) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "streamux.yaml")
	conf := fmt.Sprintf("data_dir: %s\nsources:\n  - %s\n", yamlString(filepath.Join(dir, "data")), b.yaml)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*durableWait)
	defer cancel()
	began := time.Now()

	// The first run: a client from the start, the publisher at a steady pace, the signal once
	// the client has durableHold messages; the publisher goes on meanwhile.
	s1 := serve(t, "-config", cfg)
	s1.waitSourceUp(t, "src")
	r1 := s1.record(t, "source=src")
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() { // waited for below, before the second run
		for i := 0; i < durableBefore; i += durableBurst {
			if err := b.publish(ctx, i, durableBurst); err != nil {
				pubDone <- fmt.Errorf("publish %d…%d: %w", i, i+durableBurst-1, err)
				return
			}
			published.Store(int64(i + durableBurst))
			time.Sleep(time.Millisecond)
		}
		pubDone <- nil
	}()
	eventually(t, durableWait, fmt.Sprintf("the first run's client has %d messages", durableHold), func() bool {
		return len(r1.messages()) >= durableHold
	})
	atSignal := published.Load()
	if err := s1.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if code := s1.wait(durableWait); sig == syscall.SIGTERM && code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	atExit := published.Load()
	r1.wait(t)
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	if err := b.publish(ctx, durableBefore, durableDuring); err != nil {
		t.Fatalf("publish while streamux is down: %v", err)
	}
	first := r1.messages()
	if len(first) == 0 {
		t.Fatal("the first run's client got nothing")
	}
	lastID := first[len(first)-1].ID

	// The second run: the client resumes from the last id it had.
	s2 := serve(t, "-config", cfg)
	r2 := s2.record(t, "source=src&from="+lastID)
	firstSet := numberSet(first)
	seen := func() int {
		n := len(firstSet)
		for i := range r2.numberSet() {
			if !firstSet[i] {
				n++
			}
		}
		return n
	}
	gapMissed := func() int {
		for _, ev := range r2.all() {
			if ev.Type == "gap" {
				return int(ev.Missed)
			}
		}
		return 0
	}
	a := len(first) - 1 // the first run's client's last number
	have := func(i int) bool { return firstSet[i] || r2.has(i) }
	second2 := time.Now()
	done := func() bool {
		if sig == syscall.SIGTERM {
			// Every message is either seen or counted by the gap.
			return seen()+gapMissed() >= durableTotal
		}
		// What the killed run had acknowledged upstream and held in memory, not yet written
		// to the client, never comes: one block right after the client's last message. The
		// second run passes the rest on in order, but for what a server delivers again only
		// after a wait (lateAfterKill): that is waited for too.
		return have(durableTotal-1) && lostBlock(have, a) >= 0 && time.Since(second2) >= b.settle
	}
	deadline := time.Now().Add(durableWait)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for all %d messages (a restart gap of %d); missing: %s",
				durableWait, durableTotal, gapMissed(), missing(append(first, r2.messages()...)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s2.stop()
	r2.wait(t)

	// The first run's client: 0, 1, … in order, with no gap.
	for i, ev := range first {
		if n := num(ev); n != i {
			t.Fatalf("first run: message %d of the client is number %d, want %d", i, n, i)
		}
	}
	for _, ev := range r1.all() {
		if ev.Type == "gap" {
			t.Errorf("first run: %+v", ev)
		}
	}
	// The second run's: at most one gap (restart), before any message.
	events := r2.all()
	var gap *event
	for i, ev := range events {
		switch ev.Type {
		case "gap":
			if before := messagesBefore(events[:i]); gap != nil || before > 0 || ev.Reason != "restart" {
				t.Fatalf("second run: gap %+v after %d messages, want one restart gap before them", ev, before)
			}
			gap = &events[i]
		case "message", "status":
		default:
			t.Fatalf("second run: unexpected event %+v", ev)
		}
	}
	second := r2.messages()
	if len(second) == 0 {
		t.Fatal("the second run's client got nothing")
	}
	from := num(second[0])
	missed := uint64(0)
	if gap != nil {
		missed = gap.Missed
	}
	t.Logf("published %d at the signal, %d when the process had exited (of %d before, then %d while down); first run: 0…%d to the client; second run: %d messages from %d, gap %d; %v",
		atSignal, atExit, durableBefore, durableDuring, a, len(second), from, missed, time.Since(began).Round(time.Millisecond))
	if sig == syscall.SIGTERM {
		// Exactly once, in order: what the first run numbered after the client's last message
		// (the gap) and nothing else lies between the two runs.
		for i, ev := range second {
			if n := num(ev); n != from+i {
				t.Fatalf("second run: message %d is number %d, want %d (from %d on: in order, none twice)", i, n, from+i, from)
			}
		}
		if last := from + len(second) - 1; last != durableTotal-1 {
			t.Fatalf("second run: the last message is %d, want %d", last, durableTotal-1)
		}
		if want := a + 1 + int(missed); from != want {
			t.Errorf("after SIGTERM the second run begins at %d, want %d: the first run's client had 0…%d and the first run numbered %d more (%d twice or lost)",
				from, want, a, missed, want-from)
		}
		return
	}
	// After SIGKILL: how many came twice, how many after a later one (a redelivery that
	// waited for the server's ack_wait), and how many never came (lost with the process).
	count := map[int]int{}
	for _, m := range first {
		count[num(m)]++
	}
	late, highest := 0, -1
	for _, m := range second {
		n := num(m)
		count[n]++
		if n < highest {
			late++
		}
		highest = max(highest, n)
	}
	dup := 0
	for n, c := range count {
		if n < 0 || n >= durableTotal {
			t.Errorf("message number %d was never published", n)
		}
		dup += c - 1
	}
	lost := lostBlock(have, a)
	t.Logf("after SIGKILL: %d deliveries twice (in flight at most %d), %d after a later message, %d lost with the process (%d…%d)",
		dup, b.inFlight, late, lost, a+1, a+lost)
	if dup > b.inFlight {
		t.Errorf("after SIGKILL %d messages came twice, more than the %d the source may have in flight", dup, b.inFlight)
	}
	if late > 0 && !b.lateAfterKill {
		t.Errorf("after SIGKILL %d messages came after later ones", late)
	}
	// The killed run could hold no more than its router's input and the client's queue, and
	// only messages published before it had exited.
	if bound := router.InputSize + durableQueueEvents; lost > bound {
		t.Errorf("after SIGKILL %d messages were lost, more than the %d the process could hold", lost, bound)
	}
	if lost > 0 && a+lost >= int(atExit)+durableBurst {
		t.Errorf("after SIGKILL messages up to %d were lost, published after the process had exited (%d by then)", a+lost, atExit)
	}
}

// durableQueueEvents is limits.queue_events's default: the events queued for a client.
const durableQueueEvents = 1024

// lostBlock returns k if the numbers below durableTotal that have does not hold are
// a+1…a+k (k = 0: none), or -1 if they are not one such block.
func lostBlock(have func(int) bool, a int) int {
	k := 0
	for a+1+k < durableTotal && !have(a+1+k) {
		k++
	}
	for i := range durableTotal {
		if !have(i) && (i <= a || i > a+k) {
			return -1
		}
	}
	return k
}

// missing describes the numbers below durableTotal of no message of msgs.
func missing(msgs []message) string {
	have := map[int]bool{}
	for _, ev := range msgs {
		have[num(ev)] = true
	}
	var out []string
	for i := 0; i < durableTotal; i++ {
		if have[i] {
			continue
		}
		j := i
		for j+1 < durableTotal && !have[j+1] {
			j++
		}
		out = append(out, fmt.Sprintf("%d…%d", i, j))
		i = j
	}
	return strings.Join(out, ", ")
}

// message is a message of a stream, with the number of its body.
type message struct {
	event
	n int // the "i" of its JSON body
}

func num(m message) int { return m.n }

// numberSet is the numbers of msgs.
func numberSet(msgs []message) map[int]bool {
	out := make(map[int]bool, len(msgs))
	for _, m := range msgs {
		out[m.n] = true
	}
	return out
}

// waitSourceUp waits, up to durableWait, until the source is up.
func (s *server) waitSourceUp(t *testing.T, name string) {
	t.Helper()
	eventually(t, durableWait, fmt.Sprintf("source %s up", name), func() bool {
		if s.exited() {
			t.Fatalf("%s exited (%v):\n%s", s, s.err, s.stderr)
		}
		return s.sources(t)[name].State == "up"
	})
}

// recording is an NDJSON stream read to its end by a goroutine of its own.
type recording struct {
	mu     sync.Mutex
	events []event
	msgs   []message
	nums   map[int]bool // the numbers of msgs
	err    error
	done   chan struct{}
	cancel context.CancelFunc
}

// record opens an NDJSON stream with query and reads it, until it ends, in the background.
func (s *server) record(t *testing.T, query string) *recording {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*durableWait)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/stream?"+query), nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /v1/stream?%s: %s", query, resp.Status)
	}
	r := &recording{nums: map[int]bool{}, done: make(chan struct{}), cancel: cancel}
	go func() { // the stream's reader; wait (or the cleanup) waits for it
		defer close(r.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		sc.Split(wholeLines)
		for sc.Scan() {
			if err := r.add(sc.Bytes()); err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wholeLines splits a stream into its lines that end with a newline: a line that the end of
// the connection cut (the server was killed while writing it) is not one, as the event it began
// was not delivered, where bufio.ScanLines would hand out its start.
func wholeLines(data []byte, _ bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	return 0, nil, nil
}

// add records one line of the stream.
func (r *recording) add(line []byte) error {
	var ev event
	if err := json.Unmarshal(line, &ev); err != nil {
		return fmt.Errorf("bad line %q: %w", line, err)
	}
	m := message{event: ev, n: -1}
	if ev.Type == "message" {
		var b struct {
			I *int `json:"i"`
		}
		if err := json.Unmarshal(ev.Body, &b); err != nil || b.I == nil {
			return fmt.Errorf("message %s: body %s has no number (%v)", ev.ID, ev.Body, err)
		}
		m.n = *b.I
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	if m.n >= 0 {
		r.msgs = append(r.msgs, m)
		r.nums[m.n] = true
	}
	return nil
}

// wait waits until the stream has ended (the server closed it, or its process ended).
func (r *recording) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(durableWait):
		t.Fatal("the stream has not ended")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatal(r.err)
	}
}

// all is every event so far.
func (r *recording) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// messages is the messages so far.
func (r *recording) messages() []message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// has says whether a message numbered i came.
func (r *recording) has(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nums[i]
}

// numberSet is the numbers of the messages so far.
func (r *recording) numberSet() map[int]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.nums)
}

// yamlString quotes s for YAML (a JSON string is a YAML one).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// messagesBefore counts the messages among events.
func messagesBefore(events []event) int {
	n := 0
	for _, ev := range events {
		if ev.Type == "message" {
			n++
		}
	}
	return n
}

// durableBody is message i's body.
func durableBody(i int) []byte {
	return fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, strings.Repeat("x", 64))
}
