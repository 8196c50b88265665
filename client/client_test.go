package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamux/streamux/client"
	"github.com/streamux/streamux/internal/netcut"
)

// body makes the i-th message's body: JSON (compact, as the server keeps it), text or binary,
// of a size picked to cross the buffers on the way (4 KiB, 64 KiB, the scanners').
func body(r *rand.Rand, i int) []byte {
	sizes := []int{0, 1, 100, 4095, 4096, 4097, 65535, 65536, 65537, 200_000}
	n := sizes[r.IntN(len(sizes))]
	if r.IntN(3) > 0 {
		n = r.IntN(300)
	}
	switch r.IntN(3) {
	case 0: // JSON
		return fmt.Appendf(nil, `{"i":%d,"pad":%q}`, i, strings.Repeat("x", n))
	case 1: // text, never valid JSON
		return fmt.Appendf(nil, "text %d %s", i, strings.Repeat("é", n/2))
	default: // binary
		b := make([]byte, n+1)
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		b[0] = 0xff // never UTF-8
		return b
	}
}

// A subscription whose connections the network keeps cutting gets every message once, in
// order, byte for byte, over both transports: it reconnects and resumes after the last id.
func TestSubscribeResumesAcrossCuts(t *testing.T) {
	for _, tr := range []client.Transport{client.WebSocket, client.SSE} {
		t.Run(tr.String(), func(t *testing.T) {
			srv := startServer(t, 0, "in")
			p := netcut.Start(t, strings.TrimPrefix(srv, "http://"))
			pub, err := client.New(srv)
			if err != nil {
				t.Fatal(err)
			}
			c, err := client.New(p.URL())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var reconnects atomic.Int64
			sub, err := c.Subscribe(ctx, client.Subscribe{Sources: []string{"in"}, Transport: tr,
				Backoff:     client.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
				OnReconnect: func(error, time.Duration) { reconnects.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()

			// Published as the subscription reads, so that cuts fall in the middle of it.
			r := rand.New(rand.NewPCG(1, uint64(tr)))
			const batches, per = 20, 25
			want := make([][]byte, 0, batches*per)
			for i := range cap(want) {
				want = append(want, body(r, i))
			}
			published := make(chan error, 1)
			go func() { // joined below
				for b := range batches {
					msgs := make([]client.Message, per)
					for i := range msgs {
						msgs[i] = client.Message{Key: fmt.Sprint(b), Body: want[b*per+i]}
					}
					if res, err := pub.Publish(ctx, "in", msgs...); err != nil || res.Accepted != per {
						published <- fmt.Errorf("publish: %+v %w", res, err)
						return
					}
					time.Sleep(10 * time.Millisecond) // paces the batches: a load shape, not a wait for anything
				}
				published <- nil
			}()
			defer func() {
				if err := <-published; err != nil {
					t.Error(err)
				}
			}()
			got := 0
			for got < len(want) {
				if got%40 == 20 {
					p.Cut()
				}
				ev, err := sub.Next(ctx)
				if err != nil {
					t.Fatalf("after %d of %d messages: %v", got, len(want), err)
				}
				switch ev.Type {
				case client.TypeGap:
					t.Fatalf("after %d messages: a gap %s", got, ev.Raw)
				case client.TypeMessage:
					data, err := ev.Data()
					if err != nil {
						t.Fatal(err)
					}
					if ev.Seq != uint64(got+1) || !bytes.Equal(data, want[got]) {
						t.Fatalf("message %d: seq %d, %d bytes %.40q; want seq %d, %d bytes %.40q", got, ev.Seq, len(data), data, got+1, len(want[got]), want[got])
					}
					got++
				}
			}
			t.Logf("%d reconnections for %d cuts", reconnects.Load(), p.Cuts())
			if reconnects.Load() < 5 {
				t.Errorf("%d reconnections for %d cuts", reconnects.Load(), p.Cuts())
			}
			if ids := sub.LastIDs(); len(ids) != 1 || ids[0] != fmt.Sprintf("in:%d", len(want)) {
				t.Errorf("LastIDs %v", ids)
			}
		})
	}
}

// What the server refuses for good ends Subscribe with its error; a predicate's with the
// position.
func TestSubscribeRefused(t *testing.T) {
	srv := startServer(t, 0, "in")
	c, err := client.New(srv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tr := range []client.Transport{client.WebSocket, client.SSE} {
		for _, tc := range []struct {
			opts   client.Subscribe
			status int
			code   string
			pos    int
		}{
			{opts: client.Subscribe{Where: `key ==`}, status: 400, code: "invalid_predicate", pos: 6},
			{opts: client.Subscribe{Sources: []string{"nosuch"}}, status: 404, code: "unknown_source", pos: -1},
		} {
			tc.opts.Transport = tr
			sub, err := c.Subscribe(ctx, tc.opts)
			var api *client.APIError
			if !errors.As(err, &api) || api.Status != tc.status || api.Code != tc.code || api.Position != tc.pos || api.Temporary() {
				t.Errorf("%v %+v: %v, want %d %s at %d", tr, tc.opts, err, tc.status, tc.code, tc.pos)
			}
			if sub != nil {
				sub.Close()
			}
		}
	}
	if _, err := c.Subscribe(ctx, client.Subscribe{From: []string{"nocolon"}}); err == nil {
		t.Error("a resume id without a source was taken")
	}
}

// A resume from further back than the history holds starts with a gap that says so, then
// what the history holds; a subscription whose context ends returns its error, and Close ends
// it for good.
func TestSubscribeGapAndEnd(t *testing.T) {
	srv := startServer(t, 10, "in")
	c, err := client.New(srv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs := make([]client.Message, 30)
	for i := range msgs {
		msgs[i] = client.Message{Body: fmt.Appendf(nil, "%d", i+1)}
	}
	if _, err := c.Publish(ctx, "in", msgs...); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, client.Subscribe{From: []string{"in:5"}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := sub.Next(ctx)
	if err != nil || ev.Type != client.TypeGap || ev.Reason != "history" || ev.Missed != 15 {
		t.Fatalf("first event %+v %v, want a history gap of 15", ev, err)
	}
	for want := 21; want <= 30; want++ {
		ev, err := sub.Next(ctx)
		if err != nil || ev.Type != client.TypeMessage || string(ev.Body) != fmt.Sprint(want) {
			t.Fatalf("%+v %v, want message %d", ev, err, want)
		}
	}
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	defer stop()
	if ev, err := sub.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next past its deadline: %+v %v", ev, err)
	}
	// The subscription lives on: the next call reconnects and resumes after 30.
	if _, err := c.Publish(ctx, "in", client.Message{Body: []byte("31")}); err != nil {
		t.Fatal(err)
	}
	if ev, err := sub.Next(ctx); err != nil || string(ev.Body) != "31" {
		t.Fatalf("after a Next that timed out: %+v %v, want 31", ev, err)
	}
	sub.Close()
	if _, err := sub.Next(ctx); err == nil {
		t.Error("Next after Close returned no error")
	}
}

// A publish stream publishes as it goes and answers with the count once closed; a server's
// refusal comes back as an *APIError.
func TestPublishStream(t *testing.T) {
	srv := startServer(t, 0, "in")
	c, err := client.New(srv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx, client.Subscribe{Where: `key == "k"`})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ps, err := c.OpenPublish(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		if err := ps.Send(client.Message{Key: "k", Headers: map[string]string{"X-Mixed": "v"}, Body: fmt.Appendf(nil, `{"i":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			// Published before the request ends: the subscription sees the first ones now.
			if err := ps.Flush(); err != nil {
				t.Fatal(err)
			}
			if ev, err := sub.Next(ctx); err != nil || string(ev.Body) != `{"i":0}` || ev.Headers["X-Mixed"] != "v" {
				t.Fatalf("first message while the stream is open: %+v %v", ev, err)
			}
		}
	}
	if res, err := ps.Close(); err != nil || res.Accepted != n {
		t.Fatalf("Close: %+v %v, want %d accepted", res, err, n)
	}
	for i := 1; i < n; i++ {
		if ev, err := sub.Next(ctx); err != nil || string(ev.Body) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("message %d: %+v %v", i, ev, err)
		}
	}
	_, err = c.Publish(ctx, "nosuch", client.Message{Body: []byte("x")})
	var api *client.APIError
	if !errors.As(err, &api) || api.Status != 404 {
		t.Errorf("publish to an unknown source: %v", err)
	}
}
