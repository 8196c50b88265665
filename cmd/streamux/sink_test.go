package main_test

// Sinks as a user runs them (issue 20, item 4): the real binary with a data directory, an http
// source and webhook sinks, against receivers in the test that fail, go away, hold a request
// open or never answer, and a streamux killed in the middle of a batch. internal/sink and
// internal/server test the runner and the webhook in process; these prove the same promises
// across a process, its restarts and a real network.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/sink"
)

// hookReq is one request a webhook receiver took, and what it answered.
type hookReq struct {
	id, timestamp, signature string
	body                     []byte
	events                   []event
	status                   int // 0: held open until the request ended, never answered
	at                       time.Time
}

func (r hookReq) acked() bool { return r.status >= 200 && r.status < 300 }

// hook is a webhook receiver on a port of its own, which a test can close (the receiver is
// down: connections are refused) and open again on the same port. answer chooses each
// request's status; 0 holds the request open until it ends (streamux gives up on it, or dies)
// or the receiver closes.
type hook struct {
	t      *testing.T
	addr   string
	answer func(r *http.Request, id string) (status int, header http.Header)

	mu      sync.Mutex // guards the fields below
	reqs    []hookReq
	srv     *http.Server
	served  chan struct{} // closed when srv's Serve has returned
	release chan struct{} // closed by close: held requests end
	held    chan struct{} // receives once per request that is held
}

// newHook starts a receiver that answers as answer says; the test's cleanup closes it.
func newHook(t *testing.T, answer func(r *http.Request, id string) (int, http.Header)) *hook {
	t.Helper()
	h := &hook{t: t, answer: answer, release: make(chan struct{}), held: make(chan struct{}, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.serve(ln)
	t.Cleanup(h.close)
	return h
}

func (h *hook) url() string { return "http://" + h.addr + "/hook" }

func (h *hook) serve(ln net.Listener) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	h.mu.Lock()
	h.srv, h.served = srv, served
	h.mu.Unlock()
	go func() { defer close(served); _ = srv.Serve(ln) }() // down and close wait for it
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the request broke off: it was not answered
	}
	req := hookReq{id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"),
		signature: r.Header.Get("webhook-signature"), body: body, at: time.Now()}
	if err := json.Unmarshal(body, &req.events); err != nil {
		h.t.Errorf("request %s: the body is not a JSON array of events: %v: %.200s", req.id, err, body)
	}
	status, header := h.answer(r, req.id)
	req.status = status
	h.mu.Lock()
	h.reqs = append(h.reqs, req)
	h.mu.Unlock()
	if status == 0 {
		select {
		case h.held <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-h.release:
		}
		return
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

// down stops the receiver: it answers the requests it has, then refuses connections.
func (h *hook) down() {
	h.t.Helper()
	h.mu.Lock()
	srv, served := h.srv, h.served
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		h.t.Fatalf("receiver shutdown: %v", err)
	}
	<-served
}

// up serves again on the same port.
func (h *hook) up() {
	h.t.Helper()
	var ln net.Listener
	eventually(h.t, 10*time.Second, "the receiver's port free again", func() bool {
		var err error
		ln, err = net.Listen("tcp", h.addr)
		return err == nil
	})
	h.serve(ln)
}

func (h *hook) close() {
	close(h.release)
	h.mu.Lock()
	srv, served := h.srv, h.served
	h.mu.Unlock()
	srv.Close()
	<-served
}

func (h *hook) requests() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookReq(nil), h.reqs...)
}

// acked are the events of the acknowledged requests, in order.
func (h *hook) acked() []event {
	var evs []event
	for _, r := range h.requests() {
		if r.acked() {
			evs = append(evs, r.events...)
		}
	}
	return evs
}

// lastAckedN is the body n of the last message acknowledged, -1 for none.
func (h *hook) lastAckedN(t *testing.T) int {
	evs := h.acked()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == "message" {
			return bodyNumber(t, evs[i])
		}
	}
	return -1
}

// bodyNumber is the n of a message whose body is {"n": N, ...}.
func bodyNumber(t *testing.T, ev event) int {
	t.Helper()
	var b struct {
		N *int `json:"n"`
	}
	if err := json.Unmarshal(ev.Body, &b); err != nil || b.N == nil {
		t.Fatalf("body %s: want {\"n\": N} (%v)", ev.Body, err)
	}
	return *b.N
}

// newSecret is a signing secret as the Standard Webhooks libraries write them.
func newSecret(t *testing.T) string {
	k := make([]byte, 24)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(k)
}

// publishNumbers posts the messages {"n": from} … {"n": from+count-1} to the http source in,
// in requests of 100 lines; each carries its publish time in t (Unix nanoseconds).
func publishNumbers(t *testing.T, s *server, from, count int) {
	t.Helper()
	if err := postNumbers(s, from, count); err != nil {
		t.Fatal(err)
	}
}

func postNumbers(s *server, from, count int) error {
	for i := from; i < from+count; {
		var b strings.Builder
		for j := 0; j < 100 && i < from+count; j, i = j+1, i+1 {
			fmt.Fprintf(&b, "{\"n\":%d,\"t\":%d}\n", i, time.Now().UnixNano())
		}
		resp, err := client.Post(s.url("/v1/sources/in/messages"), "application/x-ndjson", strings.NewReader(b.String()))
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ingest: %s %s", resp.Status, msg)
		}
	}
	return nil
}

// sinkState is GET /v1/sinks/{name}.
type sinkState struct {
	State      string        `json:"state"`
	Position   sink.Position `json:"position"`
	Delivered  uint64        `json:"delivered"`
	Failed     uint64        `json:"failed_attempts"`
	Gaps       uint64        `json:"gaps"`
	LastError  string        `json:"last_error"`
	Lag        uint64        `json:"lag"`
	LagSeconds float64       `json:"lag_seconds"`
}

// waitSinkRunning waits until the sink name has taken its first position. A sink with none saved
// begins at each source's newest message when it starts, which can be after the server answers:
// messages published before then are not the sink's.
func (s *server) waitSinkRunning(t *testing.T, name string) {
	t.Helper()
	eventually(t, 10*time.Second, "the sink "+name+" running", func() bool {
		_, ok := s.sink(t, name).Position["in"]
		return ok
	})
}

func (s *server) sink(t *testing.T, name string) sinkState {
	t.Helper()
	resp, err := client.Get(s.url("/v1/sinks/" + name))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st sinkState
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/sinks/%s: %s", name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /v1/sinks/%s: %v", name, err)
	}
	return st
}

// metrics returns the samples of /metrics whose names begin with prefix, by name and labels.
func (s *server) metrics(t *testing.T, prefix string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// sinkYAML writes the configuration of streamux with an http source in, a data directory, and
// the sinks given (YAML list items); it returns the file and the data directory.
func sinkYAML(t *testing.T, sinks string) (cfg, data string) {
	data = filepath.Join(t.TempDir(), "data")
	return writeFile(t, "streamux.yaml", fmt.Sprintf(`data_dir: %q
sources:
  - {name: in, type: http}
limits: {webhook_allow_private: true}
sinks:
%s`, data, sinks)), data
}

// checkSignatures verifies every request's Standard Webhooks signature: here, with HMAC-SHA256
// as the specification defines it, and by the specification's reference library (standardwebhooks
// on npm, run by Node, as internal/sink/webhook's tests do) when Node is here.
func checkSignatures(t *testing.T, secret string, reqs []hookReq) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", r.id, r.timestamp, r.body)
		if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.signature != want {
			t.Errorf("request %s: signature %q, want %q", r.id, r.signature, want)
		}
	}
	verify := referenceVerifier(t)
	if verify == "" {
		return
	}
	var in strings.Builder
	for _, r := range reqs {
		ts, _ := strconv.ParseInt(r.timestamp, 10, 64)
		b, _ := json.Marshal(map[string]any{"secret": secret, "id": r.id, "timestamp": ts, "body": string(r.body), "signature": r.signature})
		in.Write(append(b, '\n'))
	}
	cmd := exec.Command("node", verify)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v", verify, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(reqs) {
		t.Fatalf("the reference library answered %d of %d requests", len(lines), len(reqs))
	}
	for i, l := range lines {
		if l != "ok" {
			t.Errorf("request %s: the reference library says %q", reqs[i].id, l)
		}
	}
}

// referenceVerifier returns internal/sink/webhook's verify.mjs with the standardwebhooks
// package beside it: there if it was installed, else in a copy installed with npm ci (not in
// place: that package's own test may be installing it at the same time). "" if Node or npm is
// missing or the install fails, which only CI=true makes an error.
func referenceVerifier(t *testing.T) string {
	t.Helper()
	src, _ := filepath.Abs("../../internal/sink/webhook/testdata/verify")
	skip := func(why string, args ...any) string {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the reference verifier: "+why, args...)
		}
		t.Logf("signatures not checked by the reference library: "+why, args...)
		return ""
	}
	if _, err := exec.LookPath("node"); err != nil {
		return skip("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(src, "node_modules", "standardwebhooks")); err == nil {
		return filepath.Join(src, "verify.mjs")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return skip("npm is not on PATH")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "verify.mjs"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--prefer-offline")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return skip("npm ci: %v\n%s", err, out)
	}
	return filepath.Join(dir, "verify.mjs")
}

// A webhook receiver that fails about half the requests (5xx, and 429 with Retry-After) and is
// down for seconds in the middle gets every matching message, in order; what it gets twice is
// only ever a batch it did not acknowledge, sent again whole, signed each time.
func TestSinkWebhookThroughFailures(t *testing.T) {
	seed := mrand.Uint64()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 20))
	var rmu sync.Mutex
	refused := map[string]int{} // a batch's refusals in a row, by webhook-id
	h := newHook(t, func(r *http.Request, id string) (int, http.Header) {
		rmu.Lock()
		defer rmu.Unlock()
		// At most three refusals of one batch in a row, so that backoff stays within seconds.
		x := rng.Float64()
		switch {
		case refused[id] >= 3 || x >= 0.5:
			delete(refused, id)
			return http.StatusNoContent, nil
		case x < 0.1:
			refused[id]++
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		refused[id]++
		return []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[rng.IntN(3)], nil
	})
	secret := newSecret(t)
	cfg, _ := sinkYAML(t, fmt.Sprintf(`  - name: most
    type: webhook
    url: %s
    where: 'body.n %% 3 != 0'
    source: in
    secret: %q
    batch: {max: 50, wait: 20ms}
`, h.url(), secret))
	s := serve(t, "-config", cfg)
	s.waitUp(t, "in")
	s.waitSinkRunning(t, "most")

	const total = 3000
	var want []int // the matching numbers, in order
	for n := range total {
		if n%3 != 0 {
			want = append(want, n)
		}
	}
	publishNumbers(t, s, 0, 1000)
	eventually(t, 30*time.Second, "a third delivered before the receiver goes down", func() bool { return h.lastAckedN(t) >= 500 })
	h.down()
	downAt := time.Now()
	publishNumbers(t, s, 1000, 1000)
	// While it is down, the sink says it is retrying, and how far behind it is.
	eventually(t, 20*time.Second, "the sink retrying while the receiver is down", func() bool {
		m := s.metrics(t, "streamux_sink_")
		return m[`streamux_sink_state{sink="most",state="retrying"}`] == 1 && m[`streamux_sink_lag_seconds{sink="most"}`] > 0
	})
	if d := 3*time.Second - time.Since(downAt); d > 0 {
		time.Sleep(d) // down for 3 s: several attempts fail to connect
	}
	h.up()
	publishNumbers(t, s, 2000, 1000)
	eventually(t, 60*time.Second, "the last matching message acknowledged", func() bool { return h.lastAckedN(t) == total-1 })

	reqs := h.requests()
	var all, acked []event
	first := map[string]int{} // request index where an event id first came
	unacked := 0
	for i, r := range reqs {
		if len(r.events) > 50 {
			t.Errorf("request %d carries %d events, more than batch.max", i, len(r.events))
		}
		if !r.acked() {
			unacked++
			// A batch not acknowledged is sent again whole: the next request is the same.
			if i+1 < len(reqs) && (reqs[i+1].id != r.id || string(reqs[i+1].body) != string(r.body)) {
				t.Errorf("request %d (%s) was answered %d; the next is %s, not the same batch again", i, r.id, r.status, reqs[i+1].id)
			}
		}
		for _, ev := range r.events {
			if ev.Type != "message" {
				t.Fatalf("request %d: %+v, want messages only", i, ev)
			}
			if j, dup := first[ev.ID]; dup {
				if reqs[j].acked() && j != i {
					t.Errorf("%s came again in request %d after request %d acknowledged it", ev.ID, i, j)
				}
				continue
			}
			first[ev.ID] = i
			all = append(all, ev)
		}
		if r.acked() {
			acked = append(acked, r.events...)
		}
	}
	check := func(what string, evs []event) {
		t.Helper()
		if len(evs) != len(want) {
			t.Fatalf("%s: %d messages, want %d", what, len(evs), len(want))
		}
		for i, ev := range evs {
			if n := bodyNumber(t, ev); n != want[i] || (i > 0 && ev.Seq <= evs[i-1].Seq) {
				t.Fatalf("%s: message %d is %s n=%d, want n=%d after %s", what, i, ev.ID, n, want[i], evs[max(i-1, 0)].ID)
			}
		}
	}
	check("every request, each id once", all)
	check("the acknowledged requests", acked)
	if unacked == 0 || unacked == len(reqs) {
		t.Errorf("%d of %d requests refused: the receiver did not fail as it should", unacked, len(reqs))
	}
	t.Logf("%d requests, %d refused or held; %d messages delivered", len(reqs), unacked, len(all))
	checkSignatures(t, secret, reqs)

	eventually(t, 10*time.Second, "the sink caught up", func() bool {
		st := s.sink(t, "most")
		return st.State == "up" && st.Lag == 0 && st.Position["in"] == total
	})
	st := s.sink(t, "most")
	if st.Delivered != uint64(len(want)) || st.Failed < uint64(unacked) || st.Gaps != 0 || st.LagSeconds != 0 {
		t.Errorf("GET /v1/sinks/most: %+v; want %d delivered, at least %d failed attempts, no gaps", st, len(want), unacked)
	}
	m := s.metrics(t, "streamux_sink_")
	for name, v := range map[string]float64{
		`streamux_sink_delivered_total{sink="most"}`:        float64(len(want)),
		`streamux_sink_failed_attempts_total{sink="most"}`:  float64(st.Failed),
		`streamux_sink_gaps_total{sink="most"}`:             0,
		`streamux_sink_lag_messages{sink="most"}`:           0,
		`streamux_sink_lag_seconds{sink="most"}`:            0,
		`streamux_sink_state{sink="most",state="up"}`:       1,
		`streamux_sink_state{sink="most",state="retrying"}`: 0,
		`streamux_sink_state{sink="most",state="failed"}`:   0,
	} {
		if got, ok := m[name]; !ok || got != v {
			t.Errorf("/metrics: %s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	s.stop()
}

// streamux killed (SIGKILL) while the receiver holds a batch open, and started again on the
// same data directory, goes on from the position it saved after the last acknowledged batch:
// nothing acknowledged is sent again, and what the killed process had not delivered, which its
// history held in memory only, comes as one gap that says how many, ahead of every message
// published after the restart.
func TestSinkWebhookResumesAfterKill(t *testing.T) {
	var mu sync.Mutex
	n := 0
	h := newHook(t, func(r *http.Request, id string) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 7 {
			return 0, nil // the seventh batch is held open until streamux dies
		}
		return http.StatusNoContent, nil
	})
	secret := newSecret(t)
	cfg, data := sinkYAML(t, fmt.Sprintf(`  - name: all
    type: webhook
    url: %s
    secret: %q
    batch: {max: 50, wait: 20ms}
    timeout: 60s
`, h.url(), secret))
	s := serve(t, "-config", cfg)
	s.waitUp(t, "in")
	s.waitSinkRunning(t, "all")
	publishNumbers(t, s, 0, 1000)
	select {
	case <-h.held:
	case <-time.After(30 * time.Second):
		t.Fatalf("no batch held after 30 s; %d requests", len(h.requests()))
	}
	acked := h.acked()
	if len(acked) < 6 {
		t.Fatalf("before the held batch: %d messages acknowledged, want the six batches before it", len(acked))
	}
	for i, ev := range acked {
		if bodyNumber(t, ev) != i {
			t.Fatalf("acknowledged message %d is %s", i, ev.Body)
		}
	}
	saved := acked[len(acked)-1].Seq
	// The position is saved after each acknowledged batch, before the next is sent.
	b, err := os.ReadFile(filepath.Join(data, "sinks", "all.pos"))
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprintf(`"in:%d"`, saved) {
		t.Fatalf("sinks/all.pos: %s, %v; want in:%d, the last acknowledged", b, err, saved)
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.wait(10 * time.Second)
	before := len(h.requests())

	s2 := serve(t, "-config", cfg)
	s2.waitUp(t, "in")
	publishNumbers(t, s2, 1000, 500)
	eventually(t, 30*time.Second, "the messages published after the restart acknowledged", func() bool { return h.lastAckedN(t) == 1499 })

	reqs := h.requests()
	if held := reqs[before-1]; held.status != 0 || !strings.HasPrefix(held.id, fmt.Sprintf("in:%d..", saved+1)) {
		t.Errorf("the request held at the kill: %s, status %d", held.id, held.status)
	}
	var after []event
	for i, r := range reqs[before:] {
		if !r.acked() {
			t.Errorf("request %d after the restart (%s) not acknowledged", before+i, r.id)
		}
		after = append(after, r.events...)
	}
	if len(after) != 501 || after[0].Type != "gap" || after[0].Reason != "history" || after[0].Source != "in" {
		t.Fatalf("after the restart: %d events, the first %+v; want a gap of reason history, then 500 messages", len(after), after[0])
	}
	// The gap covers exactly what lies between the saved position and this run's first
	// number: the killed run's messages not acknowledged, and the numbers it had reserved.
	firstSeq := after[1].Seq
	if after[0].Missed != firstSeq-1-saved {
		t.Errorf("the gap misses %d, want %d: from in:%d, the saved position, to in:%d, this run's first", after[0].Missed, firstSeq-1-saved, saved, firstSeq)
	}
	for i, ev := range after[1:] {
		if ev.Type != "message" || bodyNumber(t, ev) != 1000+i || ev.Seq != firstSeq+uint64(i) {
			t.Fatalf("after the restart, message %d: %+v, want n=%d", i, ev, 1000+i)
		}
	}
	// Nothing is lost without a word: every message is acknowledged once, or inside the gap.
	seen := map[string]bool{}
	for _, ev := range append(acked, after[1:]...) {
		if seen[ev.ID] {
			t.Errorf("%s acknowledged twice", ev.ID)
		}
		seen[ev.ID] = true
	}
	for _, r := range reqs[6:before] { // the held batch
		for _, ev := range r.events {
			if ev.Seq <= saved || ev.Seq > saved+after[0].Missed {
				t.Errorf("%s of the killed run was neither acknowledged nor in the gap", ev.ID)
			}
		}
	}
	if before != 7 {
		t.Errorf("%d requests before the kill, want 7", before)
	}
	checkSignatures(t, secret, reqs)
	eventually(t, 10*time.Second, "the sink caught up", func() bool { return s2.sink(t, "all").Lag == 0 })
	// delivered counts the events acknowledged, the gap among them, as its metric's help says.
	if st := s2.sink(t, "all"); st.Delivered != uint64(len(after)) || st.State != "up" || st.Position["in"] != after[len(after)-1].Seq {
		t.Errorf("GET /v1/sinks/all after the restart: %+v; want %d delivered, at %s", st, len(after), after[len(after)-1].ID)
	}
	s2.stop()
}

// A receiver that accepts connections and never answers holds its own sink and nothing else: a
// client of the same source and a second sink to a healthy receiver get every message at the
// pace it is published, while the first sink's one request is still open.
func TestSinkHungReceiverSlowsNothingElse(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var cmu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() { // ends when the listener is closed, by the cleanup below
		defer close(accepted)
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns = append(conns, c) // never read, never answered
			cmu.Unlock()
		}
	}()
	t.Cleanup(func() {
		hung.Close()
		<-accepted
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
	})
	healthy := newHook(t, func(*http.Request, string) (int, http.Header) { return http.StatusNoContent, nil })
	cfg, _ := sinkYAML(t, fmt.Sprintf(`  - name: hung
    type: webhook
    url: http://%s/
    batch: {max: 50, wait: 20ms}
    timeout: 120s
  - name: healthy
    type: webhook
    url: %s
    batch: {max: 50, wait: 20ms}
`, hung.Addr(), healthy.url()))
	s := serve(t, "-config", cfg)
	s.waitUp(t, "in")
	s.waitSinkRunning(t, "hung")
	s.waitSinkRunning(t, "healthy")
	st := s.openNDJSON(t, "source=in")

	// 500 messages a second for 6 s, 50 every 100 ms.
	const total, per = 3000, 50
	published := make(chan error, 1)
	go func() { // the test waits for it below
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < total; i += per {
			if err := postNumbers(s, i, per); err != nil {
				published <- err
				return
			}
			<-tick.C
		}
		published <- nil
	}()
	start := time.Now()
	var worst time.Duration
	for i := 0; i < total; i++ {
		ev := st.nextMessage(t)
		if n := bodyNumber(t, ev); n != i {
			t.Fatalf("the client got n=%d, want %d", n, i)
		}
		worst = max(worst, time.Since(publishTime(t, ev)))
	}
	clientDone := time.Since(start)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the healthy sink got every message", func() bool { return healthy.lastAckedN(t) == total-1 })
	var sinkWorst time.Duration
	for i, ev := range healthy.acked() {
		if n := bodyNumber(t, ev); n != i {
			t.Fatalf("the healthy sink's message %d is n=%d", i, n)
		}
	}
	for _, r := range healthy.requests() {
		for _, ev := range r.events {
			sinkWorst = max(sinkWorst, r.at.Sub(publishTime(t, ev)))
		}
	}
	t.Logf("the client read %d messages in %v, the slowest %v after it was published; the healthy sink's slowest took %v",
		total, clientDone.Round(time.Millisecond), worst.Round(time.Millisecond), sinkWorst.Round(time.Millisecond))
	// A router held by the hung sink would hold these for its 120 s timeout; 5 s is what a
	// loaded machine may take.
	if worst > 5*time.Second || sinkWorst > 5*time.Second {
		t.Errorf("slowest message: %v to the client, %v to the healthy sink; want both under 5 s", worst, sinkWorst)
	}
	hs := s.sink(t, "hung")
	if hs.Delivered != 0 || hs.Failed != 0 || hs.Position["in"] != 0 {
		t.Errorf("GET /v1/sinks/hung: %+v; want its first request still open", hs)
	}
	cmu.Lock()
	if len(conns) != 1 {
		t.Errorf("the hung receiver took %d connections, want the one of its first request", len(conns))
	}
	cmu.Unlock()
	s.stop()
}

// publishTime is when the test published ev (its body's t).
func publishTime(t *testing.T, ev event) time.Time {
	t.Helper()
	var b struct {
		T int64 `json:"t"`
	}
	if err := json.Unmarshal(ev.Body, &b); err != nil || b.T == 0 {
		t.Fatalf("body %s: no t (%v)", ev.Body, err)
	}
	return time.Unix(0, b.T)
}
