package redisstreams_test

import (
	"context"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redisstreams"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

const wait = 30 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// msgs returns one message per body, with the body as its key.
func msgs(bodies ...string) []sourcetest.Msg {
	out := make([]sourcetest.Msg, len(bodies))
	for i, b := range bodies {
		out[i] = sourcetest.Msg{Key: b, Body: []byte(b)}
	}
	return out
}

func bodies(ms []*stream.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}

// run starts a source of c with a collector, and waits until it is up.
func run(t *testing.T, c redisstreams.Config) (*redisstreams.Source, *sourcetest.Collector, *sourcetest.Running) {
	t.Helper()
	src := newSource(t, c)
	col := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, col.Emit)
	r.WaitState(t, 0, source.Up, wait)
	return src, col, r
}

// waitBodies waits until col holds want, and checks that it holds exactly that, in order.
func waitBodies(t *testing.T, col *sourcetest.Collector, want ...string) []*stream.Message {
	t.Helper()
	col.WaitLen(t, len(want), wait)
	got := col.Messages()
	if b := bodies(got); !slices.Equal(b, want) {
		t.Fatalf("bodies %q, want %q", b, want)
	}
	return got
}

// start: $ reads what is added after the group was made, 0 the whole stream, an id what comes
// after it; a group that exists keeps its place, whatever start says.
func TestStart(t *testing.T) {
	s := newServer(t)
	for _, c := range []struct {
		name  string
		start func(ids []string) string
		want  []string
	}{
		{"new", func([]string) string { return redisstreams.StartNew }, []string{"new"}},
		{"all", func([]string) string { return redisstreams.StartAll }, []string{"a", "b", "c", "new"}},
		{"id", func(ids []string) string { return ids[0] }, []string{"b", "c", "new"}},
		{"ms", func([]string) string { return "1" }, []string{"a", "b", "c", "new"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testContext(t)
			st := s.newStream(t)
			ids, err := s.add(ctx, st, msgs("a", "b", "c")...)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.config(st, "g", "one")
			cfg.Start = c.start(ids)
			_, col, r := run(t, cfg)
			if _, err := s.add(ctx, st, msgs("new")...); err != nil {
				t.Fatal(err)
			}
			waitBodies(t, col, c.want...)
			r.Stop()

			// The group exists now: another consumer, told to start at 0, reads on from
			// where the group is.
			cfg.Consumer, cfg.Start = "two", redisstreams.StartAll
			_, col, _ = run(t, cfg)
			if _, err := s.add(ctx, st, msgs("later")...); err != nil {
				t.Fatal(err)
			}
			waitBodies(t, col, "later")
		})
	}
}

// The group is made with the stream when neither exists (MKSTREAM).
func TestCreatesStream(t *testing.T) {
	s := newServer(t)
	ctx := testContext(t)
	st := s.newStream(t)
	_, col, _ := run(t, s.config(st, "g", "one"))
	if _, err := s.groupInfo(ctx, st, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.add(ctx, st, msgs("x")...); err != nil {
		t.Fatal(err)
	}
	waitBodies(t, col, "x")
}

// fields: headers, the default: body_field's value is the body, the other fields are headers;
// the source's own headers win over fields of their names; the key is the stream's name.
func TestFieldsAsHeaders(t *testing.T) {
	s := newServer(t)
	ctx := testContext(t)
	st := s.newStream(t)
	_, col, _ := run(t, s.config(st, "g", "one"))
	add := func(values ...any) string {
		id, err := s.client.XAdd(ctx, &goredis.XAddArgs{Stream: st, Values: values}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	id := add("body", `{"amount":12.5}`, "region", "eu", redisstreams.IDHeader, "spoofed")
	add("region", "us") // no body field: an empty body
	got := waitBodies(t, col, `{"amount":12.5}`, "")
	m := got[0]
	want := map[string]string{"region": "eu", redisstreams.StreamHeader: st, redisstreams.IDHeader: id}
	if !equalMaps(m.Headers, want) {
		t.Errorf("headers %v, want %v", m.Headers, want)
	}
	if m.Key != st || m.UpstreamID != st+":"+id {
		t.Errorf("key %q, upstream id %q; want %q and %q", m.Key, m.UpstreamID, st, st+":"+id)
	}
	if got[1].Headers["region"] != "us" {
		t.Errorf("second entry's headers %v", got[1].Headers)
	}
}

// body_field names another field; key_field takes the key from a field, which stays a header.
func TestBodyAndKeyFields(t *testing.T) {
	s := newServer(t)
	ctx := testContext(t)
	st := s.newStream(t)
	cfg := s.config(st, "g", "one")
	cfg.BodyField, cfg.KeyField = "payload", "type"
	_, col, _ := run(t, cfg)
	for _, values := range [][]any{{"type", "order.created", "payload", "p1", "body", "b1"}, {"payload", "p2"}} {
		if err := s.client.XAdd(ctx, &goredis.XAddArgs{Stream: st, Values: values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got := waitBodies(t, col, "p1", "p2")
	if got[0].Key != "order.created" || got[0].Headers["type"] != "order.created" || got[0].Headers["body"] != "b1" {
		t.Errorf("first: key %q, headers %v", got[0].Key, got[0].Headers)
	}
	if got[1].Key != "" {
		t.Errorf("an entry without the key field: key %q, want \"\"", got[1].Key)
	}
}

// fields: json: the body is a JSON object of every field, by name, values as strings; only the
// source's own headers.
func TestFieldsAsJSON(t *testing.T) {
	s := newServer(t)
	ctx := testContext(t)
	st := s.newStream(t)
	cfg := s.config(st, "g", "one")
	cfg.Fields, cfg.KeyField = redisstreams.FieldsJSON, "type"
	_, col, _ := run(t, cfg)
	id, err := s.client.XAdd(ctx, &goredis.XAddArgs{Stream: st, Values: []any{
		"type", "order", "amount", "12.5", "note", "<a & \"b\">\n", "payload", `{"x":1}`,
	}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	got := waitBodies(t, col, `{"amount":"12.5","note":"<a & \"b\">\n","payload":"{\"x\":1}","type":"order"}`)
	want := map[string]string{redisstreams.StreamHeader: st, redisstreams.IDHeader: id}
	if m := got[0]; m.Key != "order" || !equalMaps(m.Headers, want) {
		t.Errorf("key %q, headers %v; want \"order\", %v", m.Key, m.Headers, want)
	}
}

// On a restart the consumer's own pending entries (read, never acknowledged) come first, marked
// redelivered; one deleted from the stream meanwhile is only acknowledged, and counted.
func TestOwnPendingFirst(t *testing.T) {
	s := newServer(t)
	ctx := testContext(t)
	st := s.newStream(t)
	if err := s.client.XGroupCreateMkStream(ctx, st, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	ids, err := s.add(ctx, st, msgs("p1", "p2", "p3", "n1")...)
	if err != nil {
		t.Fatal(err)
	}
	// A streamux that died with three entries read and not acknowledged.
	if err := s.client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "me", Streams: []string{st, ">"}, Count: 3}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.client.XDel(ctx, st, ids[1]).Err(); err != nil {
		t.Fatal(err)
	}
	src, col, _ := run(t, s.config(st, "g", "me"))
	got := waitBodies(t, col, "p1", "p3", "n1")
	for i, want := range []string{"true", "true", ""} {
		if h := got[i].Headers[redisstreams.RedeliveredHeader]; h != want {
			t.Errorf("%s: %s %q, want %q", got[i].Body, redisstreams.RedeliveredHeader, h, want)
		}
	}
	waitPending(t, s, st, "g", 0)
	waitCounters(t, src, func(c redisstreams.Counters) bool {
		return c.Deleted == 1 && c.Received == 4 && c.Messages == 3 && c.Acked == 4
	}, "4 received (one deleted), 3 passed on, 4 acknowledged")
}

// The pending entries of another consumer, idle past claim_idle, are claimed: at the start,
// before new entries, and by the sweep every claim_idle while running.
func TestClaimIdle(t *testing.T) {
	s := newServer(t)
	ctx := testContext(t)
	st := s.newStream(t)
	if err := s.client.XGroupCreateMkStream(ctx, st, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	const idle = 300 * time.Millisecond
	deadRead := func(consumer string, n int64) {
		t.Helper()
		if err := s.client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: consumer, Streams: []string{st, ">"}, Count: n}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.add(ctx, st, msgs("d1", "d2", "n1")...); err != nil {
		t.Fatal(err)
	}
	deadRead("dead", 2)
	waitIdle(t, s, st, "g", "dead", idle)

	cfg := s.config(st, "g", "live")
	cfg.ClaimIdle, cfg.Block = idle, 50*time.Millisecond
	src, col, _ := run(t, cfg)
	got := waitBodies(t, col, "d1", "d2", "n1")
	if got[0].Headers[redisstreams.RedeliveredHeader] != "true" || got[2].Headers[redisstreams.RedeliveredHeader] != "" {
		t.Errorf("redelivered: %v / %v", got[0].Headers, got[2].Headers)
	}

	// Another consumer dies while the source runs: hold the source in emit with an entry h
	// it read (so that it reads nothing more), let "dead2" read e1 and e2 and leave them, and
	// the sweep claims them once idle.
	col.SetLimit(3)
	if _, err := s.add(ctx, st, msgs("h")...); err != nil {
		t.Fatal(err)
	}
	waitPending(t, s, st, "g", 1) // h, read by the source and not acknowledged
	if _, err := s.add(ctx, st, msgs("e1", "e2")...); err != nil {
		t.Fatal(err)
	}
	deadRead("dead2", 2)
	waitIdle(t, s, st, "g", "dead2", idle)
	col.SetLimit(-1)
	got = waitBodies(t, col, "d1", "d2", "n1", "h", "e1", "e2")
	if got[4].Headers[redisstreams.RedeliveredHeader] != "true" {
		t.Errorf("e1 was claimed: %v", got[4].Headers)
	}
	waitPending(t, s, st, "g", 0)
	waitCounters(t, src, func(c redisstreams.Counters) bool { return c.Claimed == 4 }, "4 claimed")
}

// waitPending waits until the group has n entries pending.
func waitPending(t *testing.T, s *server, st, group string, n int64) {
	t.Helper()
	sourcetest.Eventually(t, wait, func() bool {
		g, err := s.groupInfo(context.Background(), st, group)
		return err == nil && g.Pending == n
	}, "%d entries pending in group %s", n, group)
}

// waitCounters waits until the source's counters satisfy ok. The group's pending list empties
// when Redis has taken an XACK, a moment before the source counts the answer: counters are read
// until they agree, not once.
func waitCounters(t *testing.T, src *redisstreams.Source, ok func(redisstreams.Counters) bool, want string) {
	t.Helper()
	var c redisstreams.Counters
	sourcetest.Eventually(t, wait, func() bool {
		c = src.Counters().(redisstreams.Counters)
		return ok(c)
	}, "counters %s (last %+v)", want, &c)
}

// waitIdle waits until every pending entry of consumer has been idle for d.
func waitIdle(t *testing.T, s *server, st, group, consumer string, d time.Duration) {
	t.Helper()
	sourcetest.Eventually(t, wait, func() bool {
		p, err := s.client.XPendingExt(context.Background(), &goredis.XPendingExtArgs{
			Stream: st, Group: group, Start: "-", End: "+", Count: 100, Consumer: consumer,
		}).Result()
		if err != nil || len(p) == 0 {
			return false
		}
		for _, e := range p {
			if e.Idle < d {
				return false
			}
		}
		return true
	}, "the pending entries of %s to be idle for %v", consumer, d)
}

// A key that holds something else than a stream will not be cured by retrying soon: failed.
func TestWrongType(t *testing.T) {
	s := newServer(t)
	st := s.newStream(t)
	if err := s.client.Set(testContext(t), st, "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := sourcetest.Start(t, newSource(t, s.config(st, "g", "one")), sourcetest.NewCollector().Emit)
	i := r.WaitState(t, 0, source.Failed, wait)
	t.Logf("failed with: %v", r.Changes()[i].Err)
}

// A stop while the server has not answered the handshake returns at once, not after the
// connect timeout.
func TestStopWhileConnecting(t *testing.T) {
	sourcetest.StopWhileConnecting(t, func(addr string) source.Source {
		c := redisstreams.Config{Stream: "s", Group: "g"}
		c.URL, c.ConnectTimeout = "redis://"+addr, time.Minute
		return newSource(t, c)
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
