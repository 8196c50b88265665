package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/output"
)

func keyEvenOdd(i int) string {
	if i%2 == 0 {
		return "even"
	}
	return "odd"
}

// Every transport delivers the same events, in order, for the same predicate and sources.
func TestTransportsDeliverTheSameEvents(t *testing.T) {
	e := newEnv(t, envOptions{})
	q := url.Values{"where": {`key == "even" && body.n > 4`}, "source": {"in"}}
	batch := e.wsBatch(q)
	clients := map[string]client{"ndjson": e.ndjson(q), "sse": e.sse(q, ""), "websocket": e.ws(q), "websocket batch": batch}
	for _, c := range clients {
		defer c.close()
	}
	e.publish("other", numbered(10, keyEvenOdd)...) // not read by these streams
	e.publish("in", numbered(20, keyEvenOdd)...)
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			for n := 6; n <= 20; n += 2 {
				ev := c.next(t)
				want := fmt.Sprintf(`{"n":%d}`, n)
				if ev.Type != "message" || ev.Source != "in" || ev.Key != "even" || string(ev.Body) != want || ev.Seq != uint64(n) {
					t.Fatalf("got %+v, want message in:%d with body %s", ev, n, want)
				}
				if ev.ID != fmt.Sprintf("in:%d", n) {
					t.Fatalf("id %q", ev.ID)
				}
				if ev.Headers == nil {
					t.Fatal("headers must be {} when there are none")
				}
				if _, err := time.Parse(time.RFC3339, ev.Time); err != nil || !strings.HasSuffix(ev.Time, "Z") || len(ev.Time) != len("2026-11-25T16:00:00.123Z") {
					t.Fatalf("time %q is not RFC 3339 UTC with milliseconds", ev.Time)
				}
				if name == "sse" && (ev.sseID != ev.ID || ev.sseEvent != "message") {
					t.Fatalf("sse framing id=%q event=%q", ev.sseID, ev.sseEvent)
				}
			}
		})
	}
	t.Logf("batch: 8 events in %d frames", batch.frames)
}

// The event fields of API.md, including headers, non-JSON bodies and binary bodies.
func TestEventEncoding(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.ndjson(url.Values{"source": {"in"}})
	defer c.close()

	post := func(ct, query, body string, hdr map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/sources/in/messages"+query, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, b)
		}
	}
	post("application/json", "?key=eu.order", "{\n \"amount\": 120.5 }", map[string]string{"X-Streamux-Header-Region": "eu"})
	post("text/plain", "", "hello\nworld", map[string]string{"X-Streamux-Key": "greeting"})
	post("application/octet-stream", "", "\xff\x00\x01", nil)

	ev := c.next(t)
	if ev.Key != "eu.order" || ev.Headers["region"] != "eu" || string(ev.Body) != `{"amount":120.5}` {
		t.Fatalf("json message: %+v", ev)
	}
	ev = c.next(t)
	if ev.Key != "greeting" || string(ev.Body) != `"hello\nworld"` {
		t.Fatalf("text message: %+v", ev)
	}
	binary := func(want string) {
		t.Helper()
		c.next(t)
		line := c.(*lineClient).sc.Bytes()
		var raw map[string]any
		if err := json.Unmarshal(line, &raw); err != nil || !utf8.Valid(line) {
			t.Fatalf("%q: %v", line, err)
		}
		if raw["body"] != want || raw["body_encoding"] != "base64" {
			t.Fatalf("binary message: %s, want body %s in base64", line, want)
		}
	}
	binary("/wAB")

	// JSON is UTF-8: JSON with other bytes in its strings is carried in base64, so that the
	// event stays valid UTF-8 (a browser closes a WebSocket on a text frame that is not).
	post("application/json", "", "{\"a\":\"\xff\"}", nil)
	binary(base64.StdEncoding.EncodeToString([]byte("{\"a\":\"\xff\"}")))
	post("application/x-ndjson", "?envelope=true", "{\"body\":{\"a\":\"\xff\"}}\n", nil)
	binary(base64.StdEncoding.EncodeToString([]byte("{\"a\":\"\xff\"}")))
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name     string
		q        url.Values
		status   int
		code     string
		position int // -1: none expected
	}{
		{"syntax", url.Values{"where": {`key == `}}, 400, "invalid_predicate", 7},
		{"type", url.Values{"where": {`key == 1`}}, 400, "invalid_predicate", 4},
		{"not bool", url.Values{"where": {`key`}}, 400, "invalid_predicate", -2},
		{"unknown variable", url.Values{"where": {`nope == "x"`}}, 400, "invalid_predicate", 0},
		{"too long", url.Values{"where": {`key == "` + long + `"`}}, 400, "predicate_too_long", -2},
		{"too costly", url.Values{"where": {`body.a.all(x, body.b.all(y, body.c.all(z, x + y + z == "x")))`}}, 400, "predicate_too_costly", -2},
		{"unknown source", url.Values{"source": {"nope"}}, 404, "unknown_source", -1},
		{"bad policy", url.Values{"policy": {"sometimes"}}, 400, "invalid_parameter", -1},
		{"bad from", url.Values{"from": {"in:abc"}}, 400, "invalid_parameter", -1},
		{"from other source", url.Values{"source": {"in"}, "from": {"other:3"}}, 400, "invalid_parameter", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, accept := range []string{"application/x-ndjson", "text/event-stream"} {
				req, _ := http.NewRequest(http.MethodGet, e.streamURL(tc.q), nil)
				req.Header.Set("Accept", accept)
				resp, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var body apiErr
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("body is not JSON: %v", err)
				}
				if resp.StatusCode != tc.status || body.Error.Code != tc.code || body.Error.Message == "" {
					t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, body.Error, tc.status, tc.code)
				}
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
				}
				switch {
				case tc.position >= 0 && (body.Error.Position == nil || *body.Error.Position != tc.position):
					t.Fatalf("position %v, want %d (%s)", body.Error.Position, tc.position, body.Error.Message)
				case tc.position == -1 && body.Error.Position != nil:
					t.Fatalf("position %d, want none", *body.Error.Position)
				}
			}
			// A WebSocket handshake gets the same answer, before any upgrade.
			u := "ws" + strings.TrimPrefix(e.streamURL(tc.q), "http")
			_, resp, err := websocket.DefaultDialer.Dial(u, nil)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("websocket: err %v, resp %v", err, resp)
			}
			resp.Body.Close()
		})
	}
}

// A client that never reads, with policy disconnect, is closed with 4008 "slow consumer"; with
// policy drop it gets a gap event; either way a fast client on the same source gets everything.
func TestSlowConsumer(t *testing.T) {
	for _, policy := range []string{"disconnect", "drop"} {
		t.Run(policy, func(t *testing.T) {
			// Small socket buffers, so that a client that stops reading fills them quickly,
			// as a stalled peer on a real network does.
			e := newEnv(t, envOptions{queue: output.Limits{Events: 64}, smallBuffers: true})
			slow := e.wsSmallBuffer(url.Values{"source": {"in"}, "policy": {policy}})
			defer slow.close()
			fast := e.ndjson(url.Values{"source": {"in"}}).(*lineClient)
			defer fast.close()

			// Publish in rounds and let the fast client read each round before the next, until
			// the slow client's queue has overflowed.
			pad := strings.Repeat("x", 4<<10)
			seq := 0
			overflowed := func() bool {
				var subs []struct {
					Counters struct {
						Dropped uint64 `json:"dropped"`
					} `json:"counters"`
				}
				e.getJSON("/v1/subscriptions", &subs)
				for _, s := range subs {
					if s.Counters.Dropped > 0 {
						return true
					}
				}
				return false
			}
			for round := 0; !overflowed(); round++ {
				if round == 200 {
					t.Fatal("the slow client never overflowed")
				}
				batch := make([]msg, 10)
				for j := range batch {
					batch[j] = msg{Key: "k", Body: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, seq+j+1, pad))}
				}
				e.publish("in", batch...)
				for range batch {
					seq++
					if ev := fast.next(t); ev.Seq != uint64(seq) {
						t.Fatalf("fast client: got seq %d, want %d", ev.Seq, seq)
					}
				}
			}
			// Now read: the slow client finds what was queued, then the verdict.
			_ = slow.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			sawGap, last := false, uint64(0)
			for {
				_, b, err := slow.conn.ReadMessage()
				if err != nil {
					var ce *websocket.CloseError
					if policy == "disconnect" && errors.As(err, &ce) && ce.Code == 4008 && ce.Text == "slow consumer" {
						return
					}
					t.Fatalf("read after seq %d: %v", last, err)
				}
				var ev event
				if err := json.Unmarshal(b, &ev); err != nil {
					t.Fatal(err)
				}
				switch {
				case ev.Type == "gap":
					if policy != "drop" || ev.Missed == 0 || ev.Source != "in" || ev.Reason != "dropped" || sawGap {
						t.Fatalf("unexpected gap %+v", ev)
					}
					sawGap = true
					// The stream goes on after the gap.
					e.publish("in", msg{Key: "k", Body: json.RawMessage(`{"n":0}`)})
				case ev.Type == "message" && ev.Seq <= last:
					t.Fatalf("seq %d after %d", ev.Seq, last)
				case ev.Type == "message" && ev.Seq == uint64(seq+1):
					if !sawGap {
						t.Fatal("the last message came without a gap before it")
					}
					if ev := fast.next(t); ev.Seq != uint64(seq+1) {
						t.Fatalf("fast client: got seq %d, want %d", ev.Seq, seq+1)
					}
					return
				}
				last = ev.Seq
			}
		})
	}
}
