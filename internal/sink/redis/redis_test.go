package redis_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/redis"
	"github.com/streamux/streamux/internal/sink/sinktest"
	redissource "github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

const addr = "127.0.0.1:6379"

// server returns a client of the machine's Redis, skipping the test when there is none (failing
// it under CI=true), and deletes the keys under prefix when the test ends.
func server(t *testing.T, prefix string) *goredis.Client {
	t.Helper()
	sourcetest.RequireServer(t, "Redis", addr)
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		c.Close()
	})
	return c
}

func newSink(t *testing.T, c redis.Config) *redis.Sink {
	t.Helper()
	s, err := redis.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// entries reads a stream's entries as messages: the body and key fields, and the others as
// headers.
func entries(t *testing.T, c *goredis.Client, key string) []sinktest.Got {
	t.Helper()
	xs, err := c.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]sinktest.Got, 0, len(xs))
	for _, x := range xs {
		g := sinktest.Got{Headers: map[string]string{}}
		for k, v := range x.Values {
			switch k {
			case "body":
				g.Body = []byte(v.(string))
			case "key":
				g.Key = v.(string)
			default:
				g.Headers[k] = v.(string)
			}
		}
		got = append(got, g)
	}
	return got
}

// Through the Runner, in batches, to streams made by a template: every entry in order, with the
// body, key and headers as fields byte for byte.
func TestDeliverStream(t *testing.T) {
	prefix := sourcetest.UniqueName(t)
	c := server(t, prefix)
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 23, BatchWait: time.Millisecond},
		newSink(t, redis.Config{Conn: redissource.Conn{URL: "redis://" + addr}, Stream: prefix + ".{header.region}"}))
	msgs := sinktest.Messages(0, 300)
	srv.Publish(t, msgs...)
	r.WaitPosition(t, srv.Sent(), 30*time.Second)
	for _, region := range []string{"eu", "us", "ap"} {
		var want []*stream.Message
		for _, m := range msgs {
			if m.Headers["region"] == region {
				want = append(want, m)
			}
		}
		sinktest.Check(t, entries(t, c, prefix+"."+region), want, func(m *stream.Message) string { return m.Key }, false)
	}
	if in := r.Info(); in.Delivered != 300 || in.State != sink.StateUp {
		t.Errorf("info %+v", in)
	}
}

// subscriber collects what is published to the channels under prefix.
func subscriber(t *testing.T, c *goredis.Client, prefix string) func() []*goredis.Message {
	t.Helper()
	ps := c.PSubscribe(context.Background(), prefix+"*")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*goredis.Message
	done := make(chan struct{})
	go func() { // waited for by the cleanup
		defer close(done)
		for m := range ps.Channel() {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { ps.Close(); <-done })
	return func() []*goredis.Message {
		mu.Lock()
		defer mu.Unlock()
		return append([]*goredis.Message(nil), got...)
	}
}

// To a channel, a message is the event's JSON: its key, headers and body are in it (a JSON
// body as the event carries it, compacted; text as a string; other bytes in base64). With
// payload: body, it is the body as it came.
func TestDeliverChannel(t *testing.T) {
	prefix := sourcetest.UniqueName(t)
	c := server(t, prefix)
	got := subscriber(t, c, prefix)
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 10},
		newSink(t, redis.Config{Conn: redissource.Conn{URL: "redis://" + addr}, Channel: prefix + ".events.{key}"}))
	msgs := sinktest.Messages(0, 100)
	srv.Publish(t, msgs...)
	r.WaitPosition(t, srv.Sent(), 30*time.Second)
	sourcetest.Eventually(t, 10*time.Second, func() bool { return len(got()) >= len(msgs) }, "%d messages", len(msgs))
	var decoded []sinktest.Got
	want := make([]*stream.Message, len(msgs))
	for i, p := range got() {
		var ev struct {
			ID, Key      string
			Headers      map[string]string
			Body         json.RawMessage
			BodyEncoding string `json:"body_encoding"`
		}
		if err := json.Unmarshal([]byte(p.Payload), &ev); err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		g := sinktest.Got{Key: ev.Key, Headers: ev.Headers, Body: ev.Body}
		var s string
		switch {
		case ev.BodyEncoding == "base64":
			_ = json.Unmarshal(ev.Body, &s)
			g.Body, _ = base64.StdEncoding.DecodeString(s)
		case ev.Body[0] == '"':
			_ = json.Unmarshal(ev.Body, &s)
			g.Body = []byte(s)
		}
		if want := prefix + ".events." + ev.Key; p.Channel != want {
			t.Errorf("payload %d on %s, want %s", i, p.Channel, want)
		}
		decoded = append(decoded, g)
	}
	for i, m := range msgs {
		// The event carries a JSON body compacted.
		w := &stream.Message{Source: m.Source, Seq: m.Seq, Key: m.Key, Headers: m.Headers, Body: m.Body, Time: m.Time}
		if stream.ValidJSON(m.Body) {
			var b bytes.Buffer
			_ = json.Compact(&b, m.Body)
			w.Body = b.Bytes()
		}
		want[i] = w
	}
	sinktest.Check(t, decoded, want, func(m *stream.Message) string { return m.Key }, false)

	body := sinktest.Run(t, srv, sink.Settings{Name: "body"},
		newSink(t, redis.Config{Conn: redissource.Conn{URL: "redis://" + addr}, Channel: prefix + ".bodies", Payload: redis.PayloadBody}))
	body.WaitPosition(t, srv.Sent(), 30*time.Second)
	sourcetest.Eventually(t, 10*time.Second, func() bool { return len(got()) >= 2*len(msgs) }, "%d messages", 2*len(msgs))
	for i, p := range got()[len(msgs):] {
		if p.Channel != prefix+".bodies" || p.Payload != string(msgs[i].Body) {
			t.Errorf("body %d on %s: %.40q, want %.40q", i, p.Channel, p.Payload, msgs[i].Body)
		}
	}
}

// A server that is away makes the sink retrying; once it is back, everything is delivered,
// at least once and in order, on a new connection.
func TestServerDown(t *testing.T) {
	prefix := sourcetest.UniqueName(t)
	c := server(t, prefix)
	gate := sinktest.NewGate(t, addr)
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 10},
		newSink(t, redis.Config{Conn: redissource.Conn{URL: "redis://" + gate.Addr(), ConnectTimeout: time.Second}, Stream: prefix, Timeout: time.Second}))
	msgs := sinktest.Messages(0, 100)
	srv.Publish(t, msgs[:40]...)
	r.WaitPosition(t, 40, 30*time.Second)
	gate.Close()
	srv.Publish(t, msgs[40:]...)
	r.WaitState(t, sink.StateRetrying, 30*time.Second)
	gate.Open()
	r.WaitPosition(t, 100, 30*time.Second)
	if in := r.Info(); in.State != sink.StateUp || in.Failed == 0 || in.LastError == "" {
		t.Errorf("info %+v", in)
	}
	sinktest.Check(t, entries(t, c, prefix), msgs, nil, true)
}

// What can never be added fails the sink, saying which message and why.
func TestPermanent(t *testing.T) {
	prefix := sourcetest.UniqueName(t)
	c := server(t, prefix)
	if err := c.Set(context.Background(), prefix+".string", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  redis.Config
		msg  *stream.Message
		says string
	}{
		{"not a stream", redis.Config{Stream: prefix + ".string"}, &stream.Message{Body: []byte("1")}, "WRONGTYPE"},
		{"empty name", redis.Config{Stream: "{header.missing}"}, &stream.Message{Body: []byte("1")}, `message in:1: the stream (from "{header.missing}") is empty`},
		{"header named body", redis.Config{Stream: prefix}, &stream.Message{Headers: map[string]string{"body": "x"}}, `header "body" has the name of the entry's body_field`},
		{"password", redis.Config{Conn: redissource.Conn{URL: "redis://nobody:wrong@" + addr}, Stream: prefix}, &stream.Message{Body: []byte("1")}, "WRONGPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.URL == "" {
				tc.cfg.URL = "redis://" + addr
			}
			srv := sinktest.NewServer(t)
			r := sinktest.Run(t, srv, sink.Settings{}, newSink(t, tc.cfg))
			srv.Publish(t, tc.msg)
			err := r.Failed(t, 30*time.Second)
			if !sink.IsPermanent(err) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "wrong@") {
				t.Errorf("%v, want a permanent error saying %q", err, tc.says)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	url := redissource.Conn{URL: "redis://x:6379"}
	for _, c := range []struct {
		cfg  redis.Config
		want string
	}{
		{redis.Config{Stream: "s"}, "url is required"},
		{redis.Config{Conn: url}, "stream or channel is required"},
		{redis.Config{Conn: url, Stream: "s", Channel: "c"}, "stream and channel: give one"},
		{redis.Config{Conn: url, Stream: "s.{nope}"}, `stream "s.{nope}": unknown placeholder {nope}`},
		{redis.Config{Conn: url, Channel: "c.{key"}, `channel "c.{key": a { without a }`},
		{redis.Config{Conn: url, Channel: "c", Payload: "json"}, `payload "json"`},
		{redis.Config{Conn: url, Stream: "s", Payload: "body"}, "payload is a channel's"},
		{redis.Config{Conn: url, Channel: "c", MaxLen: 5}, "max_len are a stream's"},
		{redis.Config{Conn: url, Stream: "s", BodyField: "key"}, `body_field and key_field are both "key"`},
		{redis.Config{Conn: url, Stream: "s", MaxLen: -1}, "max_len -1"},
		{redis.Config{Conn: url, Stream: "s", Timeout: -1}, "timeout"},
	} {
		all := sourcetest.Problems(c.cfg.Validate())
		if !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	if errs := (&redis.Config{Conn: url, Stream: "s.{key}", MaxLen: 1000}).Validate(); len(errs) > 0 {
		t.Errorf("a valid configuration: %v", errors.Join(errs...))
	}
}
