package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/predicate"
)

// hostileRegex is the regex of issue 16: estimated by CEL at 365, it took seconds per 10 KB body
// on the router, and an ordinary where=true client got its 20th message after 30 s.
const hostileRegex = `body.s.matches("(.*.*.*.*.*.*.*.*){1000}x")`

// bigBodies are n messages whose body string s is 10 KB long, and whose items are a list of
// 2,000 strings.
func bigBodies(n int) []msg {
	body := `{"s":"` + strings.Repeat("a", 10_000) + `","items":[` + strings.Repeat(`"hay",`, 2000) + `"needle"]}`
	out := make([]msg, n)
	for i := range out {
		out[i] = msg{Key: "k", Body: json.RawMessage(body)}
	}
	return out
}

// At the default limits the hostile regex is refused when it subscribes: its program times the
// size of a body string is far over predicate_max_cost.
func TestCostlyRegexRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := e.client.Get(e.streamURL(url.Values{"where": {hostileRegex}}))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("%s; want 400 %s", resp.Status, predicate.CodeTooCostly)
	}
	var ae apiErr
	if err := json.NewDecoder(resp.Body).Decode(&ae); err != nil {
		t.Fatal(err)
	}
	if ae.Error.Code != predicate.CodeTooCostly ||
		!strings.Contains(ae.Error.Message, "limits.predicate_max_cost") {
		t.Fatalf("%s: %+v; want 400 %s", resp.Status, ae.Error, predicate.CodeTooCostly)
	}
}

// With a limit raised far enough for the hostile regex to pass its estimate, it is still held to
// the limit as it runs: on the first 10 KB body (which it would take seconds to match) every
// stream with it is cut, the WebSocket with 4009 "predicate too costly", SSE and NDJSON by the
// end of the response, as a slow consumer is; so is a comprehension over a long list. The
// ordinary client gets all twenty messages, and the cuts are counted.
func TestCostlyPredicateIsCut(t *testing.T) {
	e := newEnv(t, envOptions{predicates: predicate.Limits{MaxCost: 10_000_000}})
	q := url.Values{"source": {"in"}, "where": {hostileRegex}}
	wsRegex := e.ws(q)
	defer wsRegex.close()
	wsLoop := e.ws(url.Values{"source": {"in"}, "where": {`body.items.exists(i, i == "needle")`}})
	defer wsLoop.close()
	ordinary := e.ndjson(url.Values{"source": {"in"}, "where": {"true"}})
	defer ordinary.close()
	affordable := e.ws(url.Values{"source": {"in"}, "where": {`body.s.matches("^a+$")`}})
	defer affordable.close()

	// SSE and NDJSON streams of the hostile regex, read until they end.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ended := make(chan string, 2)
	for _, accept := range []string{"text/event-stream", "application/x-ndjson"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.streamURL(q), nil)
		req.Header.Set("Accept", accept)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", accept, resp.Status)
		}
		go func() { // ends with the response, which the test waits for below
			defer resp.Body.Close()
			var lines []string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "{") || strings.HasPrefix(sc.Text(), "data:") {
					lines = append(lines, sc.Text())
				}
			}
			if ctx.Err() != nil {
				ended <- accept + ": still open"
				return
			}
			if len(lines) > 0 {
				ended <- accept + ": got events " + strings.Join(lines, "; ")
				return
			}
			ended <- ""
		}()
	}
	waitFor(t, "six subscriptions", func() bool {
		var subs []any
		e.getJSON("/v1/subscriptions", &subs)
		return len(subs) == 6
	})

	e.publish("in", msg{Key: "k", Body: json.RawMessage(`{"s":"a","items":[]}`)})
	e.publish("in", bigBodies(20)...)
	// A liveness bound, far above what routing 21 messages takes: before the cut, the regex
	// alone took seconds per message, for this client to wait for.
	watchdog := time.AfterFunc(20*time.Second, ordinary.close)
	defer watchdog.Stop()
	for i := range 21 {
		if ev := ordinary.next(t); ev.Seq != uint64(i+1) {
			t.Fatalf("ordinary client: seq %d, want %d", ev.Seq, i+1)
		}
	}
	for i := range 21 {
		if ev := affordable.next(t); ev.Seq != uint64(i+1) {
			t.Fatalf("affordable regex: seq %d, want %d", ev.Seq, i+1)
		}
	}
	for name, c := range map[string]*wsClient{"regex": wsRegex, "comprehension": wsLoop} {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := c.conn.ReadMessage()
		if err == nil {
			t.Fatalf("%s: got %.80s, want the close", name, b)
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4009 || ce.Text != "predicate too costly" {
			t.Fatalf("%s: %v; want close 4009 \"predicate too costly\"", name, err)
		}
	}
	for range 2 {
		if why := <-ended; why != "" {
			t.Error(why)
		}
	}

	// Counted: four subscriptions cut (three sharing the regex, one the comprehension).
	var sources []struct {
		Name     string `json:"name"`
		Counters struct {
			TooCostly       uint64 `json:"predicate_too_costly"`
			PredicateErrors uint64 `json:"predicate_errors"`
		} `json:"counters"`
	}
	e.getJSON("/v1/sources", &sources)
	for _, s := range sources {
		if s.Name == "in" && (s.Counters.TooCostly != 4 || s.Counters.PredicateErrors != 0) {
			t.Errorf("source in: %+v; want 4 predicate_too_costly, no predicate_errors", s.Counters)
		}
	}
	metric := scrapeMetric(t, e, `streamux_predicate_too_costly_total{source="in"}`)
	if metric != "4" {
		t.Errorf("streamux_predicate_too_costly_total{source=\"in\"} = %q, want 4", metric)
	}
	// The affordable regex is measured: its predicate_cost is what a 10 KB body cost it.
	var subs []struct {
		Predicate string `json:"predicate"`
		Counters  struct {
			Cost uint64 `json:"predicate_cost"`
		} `json:"counters"`
	}
	waitFor(t, "the cut subscriptions to go", func() bool {
		e.getJSON("/v1/subscriptions", &subs)
		return len(subs) == 2
	})
	for _, s := range subs {
		if strings.Contains(s.Predicate, "matches") != (s.Counters.Cost >= 5*10_001) {
			t.Errorf("subscription %q: predicate_cost %d", s.Predicate, s.Counters.Cost)
		}
	}
}

// scrapeMetric returns the value of one series of /metrics, as text ("" when absent).
func scrapeMetric(t *testing.T, e *env, series string) string {
	t.Helper()
	resp, err := e.client.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
