package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sourcetest"
)

// hookReceiver is a webhook receiver that fails a share of requests, and records the bodies of
// those it acknowledged.
type hookReceiver struct {
	mu   sync.Mutex
	got  []int // the "n" of each message acknowledged, in order
	gaps int   // gap events acknowledged
	fail float64
	hang chan struct{} // not nil: requests wait on it
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.hang != nil {
		select {
		case <-h.hang:
		case <-r.Context().Done():
			return
		}
	}
	b, _ := io.ReadAll(r.Body)
	if rand.Float64() < h.fail {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	var evs []struct {
		Type string
		Body struct{ N int }
	}
	if err := json.Unmarshal(b, &evs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	for _, ev := range evs {
		if ev.Type != "message" {
			h.gaps++
			continue
		}
		h.got = append(h.got, ev.Body.N)
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) numbers() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.got...)
}

func sinkConfig(t *testing.T, dir, url string) *config.Config {
	t.Helper()
	c, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
data_dir: %s
sources: [{name: in, type: http}]
limits: {webhook_allow_private: true}
sinks:
  - name: even
    type: webhook
    url: %s
    where: 'body.n %% 2 == 0'
    batch: {max: 10, wait: 5ms}
`, dir, url))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func postNumbers(t *testing.T, r *running, from, n int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "{\"n\":%d}\n", i)
	}
	resp, err := r.client.Post(r.url+"/v1/sources/in/messages", "application/x-ndjson", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %s", resp.Status)
	}
}

// A webhook sink that fails half its requests still delivers every matching message, in order;
// GET /v1/sinks shows it; stopped and started again on the same data directory, it goes on
// after the last acknowledged batch.
func TestWebhookSinkDeliversAndResumes(t *testing.T) {
	h := &hookReceiver{fail: 0.5}
	hook := httptest.NewServer(h)
	defer hook.Close()
	dir := t.TempDir()
	r := start(t, sinkConfig(t, dir, hook.URL))
	waitSinkRunning(t, r, "even")
	postNumbers(t, r, 0, 200)
	sourcetest.Eventually(t, 30*time.Second, func() bool { return len(dedupe(h.numbers())) == 100 }, "100 even numbers delivered (%d)", func() int { return len(dedupe(h.numbers())) })
	if got := dedupe(h.numbers()); got[0] != 0 || got[99] != 198 || !ascending(got) {
		t.Errorf("delivered %v", got)
	}
	resp, err := r.client.Get(r.url + "/v1/sinks/even")
	if err != nil {
		t.Fatal(err)
	}
	var si struct {
		State     string        `json:"state"`
		Position  sink.Position `json:"position"`
		Delivered uint64        `json:"delivered"`
		Failed    uint64        `json:"failed_attempts"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&si)
	resp.Body.Close()
	if si.Delivered < 100 || si.Failed == 0 {
		t.Errorf("GET /v1/sinks/even: %+v", si)
	}
	// Past the last message (odd, not delivered) before the stop: a sink stopped short of it
	// would find it gone from the next run's history, a gap.
	sourcetest.Eventually(t, 10*time.Second, func() bool { return sinkPosition(t, r, "even") == 200 }, "the sink past in:200")
	resp, err = r.client.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"streamux_sink_delivered_total{sink=\"even\"} 100\n", `streamux_sink_state{sink="even",state="up"} 1`, `streamux_sink_lag_messages{sink="even"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if _, err := r.wait(t); err != nil {
		t.Fatal(err)
	}

	if b, err := os.ReadFile(filepath.Join(dir, "sinks", "even.pos")); err != nil || !strings.Contains(string(b), `"in:200"`) {
		t.Fatalf("saved position %s, %v; want in:200", b, err)
	}
	r2 := start(t, sinkConfig(t, dir, hook.URL))
	before := len(h.numbers())
	postNumbers(t, r2, 200, 20)
	sourcetest.Eventually(t, 30*time.Second, func() bool { return len(dedupe(h.numbers())) == 110 }, "the next 10 delivered")
	if after := h.numbers()[before:]; len(after) == 0 || after[0] != 200 {
		t.Errorf("after the restart the sink delivered %v first, want 200", after)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gaps != 0 {
		t.Errorf("%d gaps delivered", h.gaps)
	}
}

// sinkPosition is sink name's position in source in, as GET /v1/sinks/{name} shows it.
// waitSinkRunning waits until the sink name has taken its first position. A sink with none saved
// begins at each source's newest message when it starts, which can be after the server answers:
// messages posted before then are not the sink's.
func waitSinkRunning(t *testing.T, r *running, name string) {
	t.Helper()
	sourcetest.Eventually(t, 10*time.Second, func() bool {
		resp, err := r.client.Get(r.url + "/v1/sinks/" + name)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var si struct {
			Position sink.Position `json:"position"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&si)
		_, ok := si.Position["in"]
		return ok
	}, "the sink %s running", name)
}

func sinkPosition(t *testing.T, r *running, name string) uint64 {
	resp, err := r.client.Get(r.url + "/v1/sinks/" + name)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var si struct {
		Position sink.Position `json:"position"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&si)
	return si.Position["in"]
}

// A receiver that never answers holds its sink, and nothing else: a client of the same source
// gets every message.
func TestHungWebhookSlowsNothingElse(t *testing.T) {
	h := &hookReceiver{hang: make(chan struct{})}
	hook := httptest.NewServer(h)
	defer hook.Close()
	defer close(h.hang)
	r := start(t, sinkConfig(t, t.TempDir(), hook.URL))
	waitSinkRunning(t, r, "even")
	resp, err := r.client.Get(r.url + "/v1/stream?source=in&format=ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	postNumbers(t, r, 0, 500)
	dec := json.NewDecoder(resp.Body)
	for i := 0; i < 500; {
		var ev struct {
			Type string
			Body struct{ N int }
		}
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type != "message" {
			continue
		}
		if ev.Body.N != i {
			t.Fatalf("the client got %d, want %d", ev.Body.N, i)
		}
		i++
	}
}

func dedupe(ns []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, n := range ns {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func ascending(ns []int) bool {
	for i := 1; i < len(ns); i++ {
		if ns[i] <= ns[i-1] {
			return false
		}
	}
	return true
}

// do sends a request with a JSON body and returns the status and the body.
func do(t *testing.T, r *running, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// A sink made through the API delivers, comes back after a restart where it stopped, and goes
// when deleted; bad definitions are refused with what is wrong.
func TestSinksThroughTheAPI(t *testing.T) {
	h := &hookReceiver{}
	hook := httptest.NewServer(h)
	defer hook.Close()
	dir := t.TempDir()
	r := start(t, sinkConfig(t, dir, hook.URL))
	waitSinkRunning(t, r, "even")
	def := fmt.Sprintf(`{"name":"odd","type":"webhook","url":%q,"where":"body.n %% 2 == 1","source":"in","batch":{"max":5}}`, hook.URL)
	if code, body := do(t, r, "POST", "/v1/sinks", def); code != http.StatusCreated || body != `{"id":"odd"}` {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, c := range []struct {
		body string
		code int
		says string
	}{
		{def, http.StatusConflict, "sink_exists"},
		{`{"name":"even","type":"console"}`, http.StatusConflict, "in the configuration"},
		{`{"name":"x","type":"webhook","url":"http://h/","where":"body.n +"}`, http.StatusBadRequest, `{"error":{"code":"invalid_predicate","message":"`},
		{`{"name":"x","type":"webhook","url":"http://h/","colour":1}`, http.StatusBadRequest, `unknown field \"colour\"`},
		{`{"name":"x","type":"console","source":"nope"}`, http.StatusBadRequest, `source \"nope\" is not configured`},
		{`[1]`, http.StatusBadRequest, "invalid_sink"},
	} {
		if code, body := do(t, r, "POST", "/v1/sinks", c.body); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("POST %s: %d %s, want %d saying %s", c.body, code, body, c.code, c.says)
		}
	}
	// A bad predicate is answered as a stream's is: its position in the where field.
	if code, body := do(t, r, "POST", "/v1/sinks", `{"name":"x","type":"console","where":"body.n >"}`); code != http.StatusBadRequest || !strings.Contains(body, `"position":8`) {
		t.Errorf("a bad predicate: %d %s, want 400 with position 8", code, body)
	}
	postNumbers(t, r, 0, 20)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return len(h.numbers()) == 20 }, "both sinks' 20 messages")
	sourcetest.Eventually(t, 10*time.Second, func() bool { return sinkPosition(t, r, "odd") == 20 }, "the sink past in:20")
	if _, err := r.wait(t); err != nil {
		t.Fatal(err)
	}

	r2 := start(t, sinkConfig(t, dir, hook.URL))
	if code, body := do(t, r2, "GET", "/v1/sinks/odd", ""); code != http.StatusOK || !strings.Contains(body, `"position":"in:20"`) {
		t.Fatalf("after a restart: %d %s", code, body)
	}
	postNumbers(t, r2, 20, 2)
	sourcetest.Eventually(t, 20*time.Second, func() bool { return len(h.numbers()) == 22 }, "the next two")
	if code, body := do(t, r2, "DELETE", "/v1/sinks/even", ""); code != http.StatusConflict {
		t.Errorf("delete a configured sink: %d %s", code, body)
	}
	if code, body := do(t, r2, "DELETE", "/v1/sinks/odd", ""); code != http.StatusNoContent {
		t.Errorf("delete: %d %s", code, body)
	}
	if code, _ := do(t, r2, "GET", "/v1/sinks/odd", ""); code != http.StatusNotFound {
		t.Errorf("a deleted sink: %d", code)
	}
	if code, _ := do(t, r2, "DELETE", "/v1/sinks/odd", ""); code != http.StatusNotFound {
		t.Errorf("delete it again: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "sinks", "odd.json")); !os.IsNotExist(err) {
		t.Errorf("its definition is still kept: %v", err)
	}
}
