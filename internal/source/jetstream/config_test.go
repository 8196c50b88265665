package jetstream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/source/jetstream"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
)

func TestConfigProblems(t *testing.T) {
	conn := nats.Conn{URL: "nats://h:4222"}
	js := func(j nats.JetStream) jetstream.Config {
		if j.Stream == "" {
			j.Stream = "ORDERS"
		}
		return jetstream.Config{Conn: conn, JetStream: j}
	}
	for _, c := range []struct {
		cfg  jetstream.Config
		want string
	}{
		{jetstream.Config{JetStream: nats.JetStream{Stream: "S"}}, "url is required"},
		{jetstream.Config{Conn: nats.Conn{URL: "http://h"}, JetStream: nats.JetStream{Stream: "S"}}, "scheme must be nats or tls"},
		{jetstream.Config{Conn: conn}, "stream is required"},
		{js(nats.JetStream{Stream: "OR.DERS"}), `stream "OR.DERS": must not contain '.'`},
		{js(nats.JetStream{Stream: "a b"}), `stream "a b"`},
		{js(nats.JetStream{Stream: "a>"}), `stream "a>"`},
		{js(nats.JetStream{Consumer: "c*"}), `consumer "c*"`},
		{js(nats.JetStream{Consumer: "c/d"}), `consumer "c/d"`},
		{js(nats.JetStream{Start: "first"}), `start "first": must be new, all, seq:N`},
		{js(nats.JetStream{Start: "seq:0"}), `start "seq:0": seq:N takes a stream sequence from 1`},
		{js(nats.JetStream{Start: "seq:ten"}), `start "seq:ten"`},
		{js(nats.JetStream{Start: "seq 10"}), `start "seq 10": must be`},
		{js(nats.JetStream{Start: "time:yesterday"}), `start "time:yesterday": time:T takes an RFC 3339 time`},
		{js(nats.JetStream{Start: "time:2026-01-02"}), `start "time:2026-01-02"`},
		{js(nats.JetStream{AckWait: -time.Second}), "ack_wait -1s: must be positive"},
		{js(nats.JetStream{MaxAckPending: -1}), "max_ack_pending -1: must be positive"},
		{js(nats.JetStream{InactiveThreshold: -time.Second}), "inactive_threshold"},
		{jetstream.Config{Conn: conn, JetStream: nats.JetStream{Stream: "S"}, FilterSubject: "a..b"}, `filter_subject "a..b": an empty token`},
		{jetstream.Config{Conn: conn, JetStream: nats.JetStream{Stream: "S"}, FilterSubject: "a.>.b"}, `filter_subject "a.>.b"`},
		{jetstream.Config{Conn: nats.Conn{URL: "nats://u:p@h", Token: "t"}, JetStream: nats.JetStream{Stream: "S"}}, "give one credential"},
	} {
		errs := c.cfg.Validate()
		if all := sourcetest.Problems(errs); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
		if _, err := jetstream.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error saying %q", c.cfg, err, c.want)
		}
	}
	// Everything wrong at once: every problem reported.
	all := sourcetest.Problems((&jetstream.Config{JetStream: nats.JetStream{Start: "x", AckWait: -1, MaxAckPending: -1}, FilterSubject: "a b"}).Validate())
	for _, want := range []string{"url", "stream", "start", "ack_wait", "max_ack_pending", "filter_subject"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems %q: none about %s", all, want)
		}
	}
	for _, good := range []jetstream.Config{
		js(nats.JetStream{}),
		js(nats.JetStream{Consumer: "streamux-orders", Start: "all", AckWait: time.Minute, MaxAckPending: 10, InactiveThreshold: time.Hour}),
		js(nats.JetStream{Start: "seq:1"}),
		js(nats.JetStream{Start: "time:2026-01-02T15:04:05.5+01:00"}),
		{Conn: nats.Conn{URL: "tls://a:4222, nats://b"}, JetStream: nats.JetStream{Stream: "S"}, FilterSubject: "orders.*.eu"},
	} {
		if errs := good.Validate(); len(errs) != 0 {
			t.Errorf("%+v: %v", good, errs)
		}
	}
}

// The type is registered, and its YAML decodes strictly: every option, inline, and nothing
// else.
func TestYAML(t *testing.T) {
	c, err := config.Parse([]byte(`
sources:
  - name: orders
    type: jetstream
    url: nats://127.0.0.1:4222
    connection_name: orders-reader
    tls: {insecure_skip_verify: false}
    stream: ORDERS
    consumer: streamux-orders
    filter_subject: orders.eu.>
    start: seq:100
    ack_wait: 1m
    max_ack_pending: 64
    inactive_threshold: 24h
`))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.Sources[0].Spec.(*jetstream.Config)
	want := jetstream.Config{
		Conn:          nats.Conn{URL: "nats://127.0.0.1:4222", ConnectionName: "orders-reader"},
		JetStream:     nats.JetStream{Stream: "ORDERS", Consumer: "streamux-orders", Start: "seq:100", AckWait: time.Minute, MaxAckPending: 64, InactiveThreshold: 24 * time.Hour},
		FilterSubject: "orders.eu.>",
	}
	if !ok || got.Conn.URL != want.URL || got.ConnectionName != want.ConnectionName || got.JetStream != want.JetStream || got.FilterSubject != want.FilterSubject {
		t.Fatalf("decoded %#v", c.Sources[0].Spec)
	}

	for _, c := range []struct{ yaml, want string }{
		{"subjects: [a]", `unknown field "subjects"`},
		{"queue_group: g", `unknown field "queue_group"`},
		{"start: seq:0", `start "seq:0"`},
		{"filter: a.>", `unknown field "filter"`},
	} {
		_, err := config.Parse([]byte("sources:\n  - name: s\n    type: jetstream\n    url: nats://h:4222\n    stream: S\n    " + c.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.yaml, err, c.want)
		}
	}
}
