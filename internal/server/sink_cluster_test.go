package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sourcetest"
)

// clusterSinkConfig is node's configuration in a cluster of prefix on urls, with an http source
// in and, if hook is not "", a configured webhook sink "all" of every message, in batches of 10.
func clusterSinkConfig(t *testing.T, urls, prefix, node, hook string) *config.Config {
	t.Helper()
	sinks := ""
	if hook != "" {
		sinks = fmt.Sprintf("sinks: [{name: all, type: webhook, url: %q, batch: {max: 10, wait: 5ms}}]\n", hook)
	}
	c, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
data_dir: memory
shutdown_grace: 5s
sources: [{name: in, type: http}]
limits: {webhook_allow_private: true}
%scluster: {nats: {url: %q}, stream_prefix: %s, node: %s, lease_ttl: 1s, lease_poll: 50ms}
`, sinks, urls, prefix, node))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sinkInfo is what GET /v1/sinks/{name} says of a sink in a cluster.
type sinkInfo struct {
	Name      string        `json:"name"`
	Node      string        `json:"node"`
	State     string        `json:"state"`
	Position  sink.Position `json:"position"`
	Delivered uint64        `json:"delivered"`
}

func getSink(r *running, name string) (sinkInfo, int) {
	resp, err := r.client.Get(r.url + "/v1/sinks/" + name)
	if err != nil {
		return sinkInfo{}, 0
	}
	defer resp.Body.Close()
	var si sinkInfo
	_ = json.NewDecoder(resp.Body).Decode(&si)
	return si, resp.StatusCode
}

// A configured webhook sink on a cluster of three is delivered by one node at a time: every
// message, in order; when that node stops in the middle of the stream another takes the sink
// over from the position in the cluster's state, and nothing is lost, what is sent twice being
// at most the batch in flight.
func TestClusterSinkTakeover(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	h := &hookReceiver{}
	hook := httptest.NewServer(h)
	defer hook.Close()
	nodes := map[string]*running{}
	for _, n := range []string{"n1", "n2", "n3"} {
		nodes[n] = start(t, clusterSinkConfig(t, urls, prefix, n, hook.URL))
	}
	var holder string
	sourcetest.Eventually(t, 20*time.Second, func() bool {
		si, _ := getSink(nodes["n1"], "all")
		holder = si.Node
		return holder != ""
	}, "a node holding the sink")
	// Ingest on a node that stays.
	var via *running
	for n, r := range nodes {
		if n != holder {
			via = r
			break
		}
	}
	const total = 600
	for i := 0; i < total/2; i += 50 {
		postNumbers(t, via, i, 50)
	}
	sourcetest.Eventually(t, 30*time.Second, func() bool { return len(h.numbers()) > 100 }, "deliveries begin")
	if _, err := nodes[holder].wait(t); err != nil {
		t.Logf("the holder's stop: %v", err)
	}
	for i := total / 2; i < total; i += 50 {
		postNumbers(t, via, i, 50)
	}
	sourcetest.Eventually(t, 60*time.Second, func() bool { return len(dedupe(h.numbers())) == total }, "all %d delivered (%d)", total, func() int { return len(dedupe(h.numbers())) })
	got := h.numbers()
	if d := dedupe(got); !ascending(d) || d[0] != 0 || d[total-1] != total-1 {
		t.Errorf("delivered out of order or not all: %v", d)
	}
	if dup := len(got) - total; dup > 10 {
		t.Errorf("%d messages delivered twice, more than one batch", dup)
	}
	// Consecutive runs: a message delivered twice comes again in the batch it was sent in,
	// not after later ones.
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] && got[i-1]-got[i] >= 10 {
			t.Errorf("at %d: %d after %d, more than a batch back", i, got[i], got[i-1])
		}
	}
	var after string
	sourcetest.Eventually(t, 20*time.Second, func() bool {
		si, _ := getSink(via, "all")
		after = si.Node
		return after != "" && after != holder && si.Position["in"] == total
	}, "another node holding the sink, past in:%d", total)
	t.Logf("the sink went from %s to %s; %d deliveries for %d messages", holder, after, len(got), total)
}

// A sink made through the API on one node is listed on every node, delivered by one, and
// removed everywhere by a DELETE on another.
func TestClusterAPISinkEverywhere(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	h := &hookReceiver{}
	hook := httptest.NewServer(h)
	defer hook.Close()
	n1 := start(t, clusterSinkConfig(t, urls, prefix, "n1", ""))
	n2 := start(t, clusterSinkConfig(t, urls, prefix, "n2", ""))
	def := fmt.Sprintf(`{"name":"odd","type":"webhook","url":%q,"where":"body.n %% 2 == 1","batch":{"max":5}}`, hook.URL)
	if code, body := do(t, n1, "POST", "/v1/sinks", def); code != http.StatusCreated {
		t.Fatalf("create on n1: %d %s", code, body)
	}
	if code, body := do(t, n2, "POST", "/v1/sinks", def); code != http.StatusConflict || !strings.Contains(body, "sink_exists") {
		t.Errorf("the same name on n2: %d %s, want 409", code, body)
	}
	sourcetest.Eventually(t, 20*time.Second, func() bool {
		si, code := getSink(n2, "odd")
		return code == http.StatusOK && si.Node != ""
	}, "n2 lists the sink, held by a node")
	postNumbers(t, n2, 0, 40)
	sourcetest.Eventually(t, 30*time.Second, func() bool { return len(h.numbers()) == 20 }, "the 20 odd numbers (%d)", func() int { return len(h.numbers()) })
	for _, r := range []*running{n1, n2} {
		sourcetest.Eventually(t, 10*time.Second, func() bool {
			si, _ := getSink(r, "odd")
			return si.Position["in"] == 40 && si.Delivered == 20
		}, "every node shows the sink past in:40 with 20 delivered")
	}
	if code, body := do(t, n2, "DELETE", "/v1/sinks/odd", ""); code != http.StatusNoContent {
		t.Fatalf("delete on n2: %d %s", code, body)
	}
	for _, r := range []*running{n1, n2} {
		sourcetest.Eventually(t, 10*time.Second, func() bool {
			_, code := getSink(r, "odd")
			return code == http.StatusNotFound
		}, "the sink gone from every node")
	}
	postNumbers(t, n1, 40, 10)
	time.Sleep(500 * time.Millisecond)
	if n := len(h.numbers()); n != 20 {
		t.Errorf("a deleted sink delivered: %d", n)
	}
	// The name can be used again: a new sink, from now on.
	if code, body := do(t, n2, "POST", "/v1/sinks", def); code != http.StatusCreated {
		t.Fatalf("create again: %d %s", code, body)
	}
	postNumbers(t, n1, 50, 10)
	if !eventually(30*time.Second, func() bool { return len(h.numbers()) == 25 }) {
		_, b1 := do(t, n1, "GET", "/v1/sinks", "")
		_, b2 := do(t, n2, "GET", "/v1/sinks", "")
		t.Fatalf("the sink made again delivered %v; n1 shows %s, n2 %s", h.numbers()[20:], b1, b2)
	}
	if got := h.numbers()[20:]; fmt.Sprint(got) != "[51 53 55 57 59]" {
		t.Errorf("the sink made again delivered %v", got)
	}
}
