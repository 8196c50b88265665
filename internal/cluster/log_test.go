package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

var errEnough = errors.New("enough")

// read runs r until it has handed n items (or d passes) and returns them.
func read(t testing.TB, r *cluster.Reader, n int, d time.Duration) []cluster.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var items []cluster.Item
	err := r.Run(ctx, func(it cluster.Item) error {
		items = append(items, it)
		if len(items) == n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("read %d of %d items: %v", len(items), n, err)
	}
	return items
}

func msg(i int) *stream.Message {
	return &stream.Message{Key: "k" + strconv.Itoa(i), Body: []byte(`{"i":` + strconv.Itoa(i) + `}`), BodyIsJSON: true,
		Headers: map[string]string{"i": strconv.Itoa(i)}, Time: time.UnixMilli(int64(1_700_000_000_000 + i)).UTC()}
}

func entries(from, to int) []cluster.Entry {
	var es []cluster.Entry
	for i := from; i <= to; i++ {
		es = append(es, cluster.Entry{Msg: msg(i)})
	}
	return es
}

func ensure(t testing.TB, l *cluster.Log) cluster.Info {
	t.Helper()
	// A cluster that has just started may not know all its peers yet ("no suitable peers
	// for placement") for a replicated log: the server makes it once they are, as a node's
	// feed tries again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := l.Ensure(context.Background(), 0)
		if err == nil {
			return info
		}
		if !strings.Contains(err.Error(), "no suitable peers") || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func appendAll(t testing.TB, l *cluster.Log, es []cluster.Entry) []cluster.Ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acks, err := l.Append(ctx, es)
	if err != nil {
		t.Fatal(err)
	}
	return acks
}

// Every message comes back, through a Reader and through Fetch, with the key, headers, body
// and time it was appended with, whatever bytes they hold, under the sequence its ack gave.
func TestAppendReadRoundTrip(t *testing.T) {
	t.Parallel()
	c := connect(t, sourcetest.RequireJetStream(t), cluster.Config{})
	l := c.Log("round.trip_1")
	info := ensure(t, l)
	if info.First != 1 || info.Last != 0 || info.Epoch.IsZero() {
		t.Fatalf("a new log: %+v", info)
	}
	r := rand.New(rand.NewPCG(7, 8))
	var sent []*stream.Message
	var es []cluster.Entry
	for range 500 {
		m := cluster.RandomMessage(r)
		sent = append(sent, m)
		es = append(es, cluster.Entry{Msg: m})
	}
	var acks []cluster.Ack
	for len(es) > 0 { // in batches of many sizes
		n := min(len(es), 1+r.IntN(60))
		acks = append(acks, appendAll(t, l, es[:n])...)
		es = es[n:]
	}
	for i, a := range acks {
		if a.Seq != uint64(i+1) || a.Duplicate {
			t.Fatalf("ack %d: %+v", i, a)
		}
	}
	rd := l.Reader(1, info.Epoch, 0)
	defer rd.Close()
	items := read(t, rd, len(sent), 20*time.Second)
	fetched, err := l.Fetch(context.Background(), info.Epoch, 1, len(sent))
	if err != nil || len(fetched) != len(sent) {
		t.Fatalf("fetch: %d items, %v", len(fetched), err)
	}
	for i, m := range sent {
		for _, it := range []cluster.Item{items[i], fetched[i]} {
			if it.Kind != cluster.KindMessage || it.Msg.Seq != uint64(i+1) || it.Msg.Source != "round.trip_1" {
				t.Fatalf("item %d: %+v", i, it)
			}
			if !cluster.SameMessage(m, it.Msg) {
				t.Fatalf("seq %d:\nsent %#v\ngot  %#v", i+1, m, it.Msg)
			}
		}
	}
	if rd.Next() != uint64(len(sent)+1) {
		t.Fatalf("next %d", rd.Next())
	}
}

// Ensure may be called by every node at once, and again: one stream, with the configured
// limits.
func TestEnsureIsIdempotent(t *testing.T) {
	t.Parallel()
	url := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	cfg := cluster.Config{StreamPrefix: prefix, MaxAge: time.Hour, MaxMsgs: 1000, MaxBytes: 1 << 20, DuplicateWindow: time.Minute, Storage: "memory"}
	var conns []*cluster.Conn
	for range 3 {
		conns = append(conns, connect(t, url, cfg))
	}
	var wg sync.WaitGroup
	infos := make([]cluster.Info, 3)
	errs := make([]error, 3)
	for i, c := range conns {
		wg.Go(func() { infos[i], errs[i] = c.Log("orders").Ensure(context.Background(), 0) })
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !infos[i].Epoch.Equal(infos[0].Epoch) {
			t.Fatalf("two epochs: %v %v", infos[i].Epoch, infos[0].Epoch)
		}
	}
	again := ensure(t, conns[0].Log("orders"))
	if !again.Epoch.Equal(infos[0].Epoch) {
		t.Fatal("Ensure made the stream again")
	}
	js, _ := jetstream.New(conns[0].NATS())
	s, err := js.Stream(context.Background(), prefix+"orders")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	if sc.MaxAge != time.Hour || sc.MaxMsgs != 1000 || sc.MaxBytes != 1<<20 || sc.Duplicates != time.Minute ||
		sc.Storage != jetstream.MemoryStorage || sc.Replicas != 1 || len(sc.Subjects) != 1 || sc.Subjects[0] != prefix+"orders" {
		t.Fatalf("stream config %+v", sc)
	}
	// Another retention is applied to the stream as it is, without a reset.
	cfg.MaxAge = 2 * time.Hour
	info := ensure(t, connect(t, url, cfg).Log("orders"))
	if !info.Epoch.Equal(infos[0].Epoch) {
		t.Fatal("an update reset the log")
	}
	if s, err = js.Stream(context.Background(), prefix+"orders"); err != nil || s.CachedInfo().Config.MaxAge != 2*time.Hour {
		t.Fatalf("after an Ensure with another max_age: %v, %+v", err, s.CachedInfo().Config)
	}
}

// An entry's ID stores it once within the window, whatever bytes the ID holds, and the
// repeat is answered with the first one's sequence.
func TestAppendDeduplicates(t *testing.T) {
	t.Parallel()
	c := connect(t, sourcetest.RequireJetStream(t), cluster.Config{})
	l := c.Log("dedupe")
	ensure(t, l)
	ids := []string{"key-1", "a line\r\nNats-Expected-Last-Sequence: 1", string(make([]byte, 200)), "é"}
	var es []cluster.Entry
	for i, id := range ids {
		es = append(es, cluster.Entry{ID: id, Msg: msg(i)})
	}
	first := appendAll(t, l, es)
	second := appendAll(t, l, es)
	for i := range ids {
		if first[i].Seq != uint64(i+1) || first[i].Duplicate || second[i].Seq != first[i].Seq || !second[i].Duplicate {
			t.Fatalf("id %q: first %+v, second %+v", ids[i], first[i], second[i])
		}
	}
	// Entries without an ID are each new.
	more := appendAll(t, l, []cluster.Entry{{Msg: msg(9)}, {Msg: msg(9)}})
	if more[0].Seq != 5 || more[1].Seq != 6 {
		t.Fatalf("acks %+v", more)
	}
}

// A Writer's appends are fenced: once another writer appended, the first is refused, and
// says where the log is.
func TestWriterIsFenced(t *testing.T) {
	t.Parallel()
	c := connect(t, sourcetest.RequireJetStream(t), cluster.Config{})
	l := c.Log("fenced")
	ensure(t, l)
	ctx := context.Background()
	appendAll(t, l, entries(1, 3))
	w1, err := l.Writer(ctx, nil)
	if err != nil || w1.Last() != 3 {
		t.Fatalf("writer: last %v, %v", w1, err)
	}
	acks, err := w1.Append(ctx, entries(4, 10))
	if err != nil || len(acks) != 7 || acks[6].Seq != 10 || w1.Last() != 10 {
		t.Fatalf("append: %+v, %v", acks, err)
	}
	w2, err := l.Writer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Append(ctx, entries(11, 11)); err != nil {
		t.Fatal(err)
	}
	acks, err = w1.Append(ctx, entries(12, 20))
	var stale *cluster.StaleError
	if !errors.Is(err, cluster.ErrStale) || !errors.As(err, &stale) || stale.Expected != 10 || stale.Last != 11 || acks[0].Seq != 0 {
		t.Fatalf("stale writer: %+v, %v", acks, err)
	}
	if info, _ := l.Info(ctx); info.Last != 11 {
		t.Fatalf("the stale writer appended: last %d", info.Last)
	}
	// A writer whose lease is gone sends nothing.
	held := true
	w3, _ := l.Writer(ctx, func() bool { return held })
	held = false
	if _, err := w3.Append(ctx, entries(1, 1)); !errors.Is(err, cluster.ErrLeaseLost) {
		t.Fatalf("lease lost: %v", err)
	}
	// A writer's duplicate takes no sequence, and the entries after it go on from there.
	w4, _ := l.Writer(ctx, nil)
	acks, err = w4.Append(ctx, []cluster.Entry{{ID: "x", Msg: msg(1)}, {ID: "x", Msg: msg(1)}, {Msg: msg(2)}})
	if err != nil || acks[0].Seq != 12 || !acks[1].Duplicate || acks[1].Seq != 12 || acks[2].Seq != 13 {
		t.Fatalf("duplicate in a writer's batch: %+v, %v", acks, err)
	}
}

// A reader that falls behind the log's retention is told which sequences it missed; a
// log deleted and made again is a reset, noticed whether the reader is busy or idle.
func TestReaderSkipsAndResets(t *testing.T) {
	t.Parallel()
	url := sourcetest.RequireJetStream(t)
	c := connect(t, url, cluster.Config{Storage: "memory"})
	l := c.Log("resets")
	info := ensure(t, l)
	ctx := context.Background()
	appendAll(t, l, entries(1, 10))
	js, _ := jetstream.New(c.NATS())
	s, _ := js.Stream(ctx, l.Stream())
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(6)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 8); err != nil {
		t.Fatal(err)
	}
	rd := l.Reader(1, info.Epoch, 100*time.Millisecond)
	defer rd.Close()
	items := read(t, rd, 6, 10*time.Second)
	want := []string{"skip 1-5", "message 6", "message 7", "skip 8-8", "message 9", "message 10"}
	for i, it := range items {
		if got := describe(it); got != want[i] {
			t.Fatalf("item %d: %s, want %s", i, got, want[i])
		}
	}
	// Fetch sees the same, from before the log's first on.
	fetched, err := l.Fetch(ctx, info.Epoch, 3, 100)
	if err != nil || len(fetched) != 6 || describe(fetched[0]) != "skip 3-5" || describe(fetched[3]) != "skip 8-8" {
		t.Fatalf("fetch: %v, %v", describeAll(fetched), err)
	}
	if f, err := l.Fetch(ctx, info.Epoch, 11, 100); err != nil || len(f) != 0 {
		t.Fatalf("fetch past the end: %v, %v", describeAll(f), err)
	}

	// The log is deleted and made again while the reader idles: a reset, then the new log.
	if err := l.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	newInfo := ensure(t, l)
	appendAll(t, l, entries(1, 2))
	items = read(t, rd, 3, 10*time.Second)
	if items[0].Kind != cluster.KindReset || items[0].Last != 10 || items[0].First != 1 || !items[0].Epoch.Equal(newInfo.Epoch) ||
		describe(items[1]) != "message 1" || describe(items[2]) != "message 2" {
		t.Fatalf("after a reset: %v", describeAll(items))
	}
	if _, err := l.Fetch(ctx, info.Epoch, 1, 10); !errors.Is(err, cluster.ErrReset) {
		t.Fatalf("fetch with the old epoch: %v", err)
	}
	// A reader made with the old epoch sees the reset at once.
	old := l.Reader(1, info.Epoch, 0)
	defer old.Close()
	if items := read(t, old, 1, 10*time.Second); items[0].Kind != cluster.KindReset {
		t.Fatalf("old reader: %v", describeAll(items))
	}
}

// A log made again starts after the highest sequence its nodes knew, so that no id names two
// messages; nats-server 2.9 ignores first_seq, and Ensure purges the new stream up to it.
func TestEnsureStartsAfterTheOldLog(t *testing.T) {
	t.Parallel()
	c := connect(t, sourcetest.RequireJetStream(t), cluster.Config{})
	l := c.Log("restart")
	info, err := l.Ensure(context.Background(), 1001)
	if err != nil {
		t.Fatal(err)
	}
	if info.First != 1001 || info.Last != 1000 {
		t.Fatalf("info %+v", info)
	}
	if acks := appendAll(t, l, entries(1, 1)); acks[0].Seq != 1001 {
		t.Fatalf("ack %+v", acks)
	}
	// An existing log is left as it is.
	if info, _ := l.Ensure(context.Background(), 5000); info.Last != 1001 {
		t.Fatalf("info %+v", info)
	}
}

func describe(it cluster.Item) string {
	switch it.Kind {
	case cluster.KindMessage:
		return fmt.Sprintf("message %d", it.Msg.Seq)
	case cluster.KindSkip:
		return fmt.Sprintf("skip %d-%d", it.First, it.Last)
	}
	return fmt.Sprintf("%v %d-%d", it.Kind, it.First, it.Last)
}

func describeAll(items []cluster.Item) []string {
	var s []string
	for _, it := range items {
		s = append(s, describe(it))
	}
	return s
}

// An append to a log that does not exist says so, rather than retrying until its context ends.
func TestAppendWithoutALog(t *testing.T) {
	t.Parallel()
	c := connect(t, sourcetest.RequireJetStream(t), cluster.Config{})
	l := c.Log("missing")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Append(ctx, entries(1, 3)); !errors.Is(err, cluster.ErrNoLog) {
		t.Fatalf("append: %v", err)
	}
	if _, err := l.Writer(ctx, nil); !errors.Is(err, cluster.ErrNoLog) {
		t.Fatalf("writer: %v", err)
	}
	if _, err := l.Fetch(ctx, time.Time{}, 1, 10); !errors.Is(err, cluster.ErrNoLog) {
		t.Fatalf("fetch: %v", err)
	}
}
