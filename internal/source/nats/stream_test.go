package nats_test

import (
	"context"
	"strings"
	"testing"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
)

// A nats source that names a stream reads it as the jetstream type does: its subject, if any,
// filters; the consumer is durable, named after both; messages carry the stream's headers and
// are acknowledged once the router took them.
func TestStream(t *testing.T) {
	u := sourcetest.RequireJetStream(t)
	s := newServer(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(u, prefix) })
	js, err := natsjs.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	subjects := sourcetest.UniqueName(t)
	name := prefix + "S"
	if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: name, Subjects: []string{subjects + ".>"}, Storage: natsjs.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	// Published before the source exists: read with start: all.
	for _, k := range []string{"eu.a", "us.b", "eu.c"} {
		if _, err := js.Publish(ctx, subjects+"."+k, []byte(`{"k":"`+k+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	filter := subjects + ".eu.>"
	src := newSource(t, nats.Config{Conn: nats.Conn{URL: s.url}, Subjects: []string{filter}, JetStream: nats.JetStream{Stream: name, Start: nats.StartAll}})
	if !src.AcknowledgesAfterEmit() {
		t.Error("a nats source with a stream does not acknowledge after emit")
	}
	c := sourcetest.NewCollector()
	sourcetest.Start(t, src, c.Emit).WaitState(t, 0, source.Up, wait)
	c.WaitLen(t, 2, wait)
	got := c.Messages()
	if got[0].Key != subjects+".eu.a" || got[1].Key != subjects+".eu.c" || got[1].Headers[nats.SeqHeader] != "3" || got[1].UpstreamID != name+":3" {
		t.Errorf("got %s %v, %s %v", got[0].Key, got[0].Headers, got[1].Key, got[1].Headers)
	}
	sourcetest.Eventually(t, wait, func() bool {
		st, ok := src.Counters().(nats.StreamCounters)
		return ok && st.Acked == 2
	}, "two acknowledgements in the counters")
	if _, err := js.Consumer(ctx, name, nats.DefaultConsumer(name, filter)); err != nil {
		t.Errorf("the consumer %s: %v", nats.DefaultConsumer(name, filter), err)
	}
	if core := newSource(t, nats.Config{Conn: nats.Conn{URL: s.url}, Subjects: []string{"x"}}); core.AcknowledgesAfterEmit() {
		t.Error("a core nats source acknowledges after emit")
	}
}

func TestStreamConfigProblems(t *testing.T) {
	conn := nats.Conn{URL: "nats://h:4222"}
	for _, c := range []struct {
		cfg  nats.Config
		want string
	}{
		{nats.Config{Conn: conn, Subjects: []string{"a.>", "b.>"}, JetStream: nats.JetStream{Stream: "S"}}, "at most one subject"},
		{nats.Config{Conn: conn, QueueGroup: "g", JetStream: nats.JetStream{Stream: "S"}}, "queue_group: not with stream"},
		{nats.Config{Conn: conn, Pending: 10, JetStream: nats.JetStream{Stream: "S"}}, "pending: not with stream"},
		{nats.Config{Conn: conn, JetStream: nats.JetStream{Stream: "S", Start: "last"}}, `start "last"`},
		{nats.Config{Conn: conn, JetStream: nats.JetStream{Stream: "S.T"}}, `stream "S.T"`},
		{nats.Config{Conn: conn, Subjects: []string{"a"}, JetStream: nats.JetStream{Consumer: "c"}}, "consumer: only with stream"},
		{nats.Config{Conn: conn, Subjects: []string{"a"}, JetStream: nats.JetStream{Start: "all", AckWait: 1}}, "start: only with stream; ack_wait: only with stream"},
	} {
		if all := sourcetest.Problems(c.cfg.Validate()); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	for _, good := range []nats.Config{
		{Conn: conn, JetStream: nats.JetStream{Stream: "S"}},
		{Conn: conn, Subjects: []string{"orders.>"}, JetStream: nats.JetStream{Stream: "S", Consumer: "c", Start: "seq:5"}},
	} {
		if errs := good.Validate(); len(errs) != 0 {
			t.Errorf("%+v: %v", good, errs)
		}
	}
}
