package main_test

// Helpers of the cluster tests (cluster_test.go): three streamux processes that share a
// replicated log per source in NATS JetStream, their streams, their ingest, and a view of the
// JetStream state (the logs, the leases) of the test's own.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/sourcetest"
)

// clusterSpec describes three nodes of one cluster.
type clusterSpec struct {
	// urls is node i's cluster.nats.url (comma-separated servers).
	urls func(i int) string
	// prefix is the stream prefix; sourcetest.StreamPrefix() if empty.
	prefix   string
	replicas int    // 1 if 0
	storage  string // file if ""
	// sources is the sources: list, one YAML flow mapping a line, indented by 2.
	sources string
	// extra, if set, is YAML added at the top level of node i's configuration.
	extra func(i int) string
	// env, if set, is node i's environment added.
	env func(i int) []string
}

// cnode is one streamux of a test cluster: its configuration stays, its process may be killed
// and started again on the same address.
type cnode struct {
	t      *testing.T
	name   string
	addr   string
	config string
	env    []string
	*server
}

// startNodes writes three configurations from spec and starts the three nodes, waiting until
// each answers. The test's streams are deleted when it ends, after the nodes have stopped.
func startNodes(t *testing.T, spec clusterSpec) ([]*cnode, string) {
	t.Helper()
	if spec.prefix == "" {
		spec.prefix = sourcetest.StreamPrefix()
	}
	if spec.replicas == 0 {
		spec.replicas = 1
	}
	if spec.storage == "" {
		spec.storage = "file"
	}
	// Registered first, so it runs last: after every process (whose cleanups come later)
	// is gone.
	t.Cleanup(func() { sourcetest.DeleteStreams(spec.urls(0), spec.prefix) })
	nodes := make([]*cnode, 3)
	for i := range nodes {
		n := &cnode{t: t, name: fmt.Sprintf("n%d", i+1), addr: freeAddr(t)}
		var extra string
		if spec.extra != nil {
			extra = spec.extra(i)
		}
		if spec.env != nil {
			n.env = spec.env(i)
		}
		n.config = writeFile(t, n.name+".yaml", fmt.Sprintf(`listen: %s
data_dir: memory
shutdown_grace: 5s
%ssources:
%scluster:
  nats: {url: %q}
  stream_prefix: %s
  replicas: %d
  storage: %s
  lease_ttl: 1s
  lease_poll: 50ms
  node: %s
`, n.addr, extra, spec.sources, spec.urls(i), spec.prefix, spec.replicas, spec.storage, n.name))
		nodes[i] = n
	}
	// Started at once, each then waited for: a cluster comes up as fast as its slowest node.
	for _, n := range nodes {
		n.launch()
	}
	for _, n := range nodes {
		n.waitHealthy()
	}
	// Every source up on every node (where another node reads it: once it is known which),
	// so that a client that subscribes now is told of no start.
	for _, n := range nodes {
		eventually(t, 20*time.Second, n.name+"'s sources up", func() bool {
			resp, err := client.Get(n.url("/v1/sources"))
			if err != nil {
				return false
			}
			var list []clusterSource
			err = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if err != nil {
				return false
			}
			for _, s := range list {
				if s.State != "up" {
					return false
				}
			}
			return true
		})
	}
	return nodes, spec.prefix
}

// launch starts the node's process without waiting for it to answer.
func (n *cnode) launch() {
	n.t.Helper()
	n.server = &server{proc: startEnv(n.t, n.env, "-config", n.config), addr: n.addr}
}

// waitHealthy waits until the node's process answers /healthz.
func (n *cnode) waitHealthy() {
	n.t.Helper()
	// Ready (/readyz: its history filled from the log) and every source up: an http source
	// takes requests once it runs, a moment after the node answers.
	eventually(n.t, 20*time.Second, n.name+" ready with its sources up", func() bool {
		if n.exited() {
			n.t.Fatalf("%s exited early (%v):\n%s", n.name, n.err, n.stderr)
		}
		resp, err := client.Get(n.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		resp, err = client.Get(n.url("/v1/sources"))
		if err != nil {
			return false
		}
		var srcs []clusterSource
		if jsonDecode(resp, &srcs) != nil {
			return false
		}
		for _, s := range srcs {
			if s.State != "up" {
				return false
			}
		}
		return true
	})
}

// kill sends SIGKILL and waits until the process is gone.
func (n *cnode) kill() {
	n.t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.t.Fatalf("%s: still running 10s after SIGKILL", n.name)
	}
}

// signal sends sig to the node's process.
func (n *cnode) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("%s: %v: %v", n.name, sig, err)
	}
}

// clusterSource is what GET /v1/sources says of a source in a cluster.
type clusterSource struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Counters struct {
		Received uint64 `json:"received"`
		LastSeq  uint64 `json:"last_seq"`
	} `json:"counters"`
	// Adapter is the amqp source's own counters.
	Adapter struct {
		Received    uint64 `json:"received"`
		Redelivered uint64 `json:"redelivered"`
	} `json:"adapter"`
	Leader      string  `json:"leader"`
	LogFirstSeq *uint64 `json:"log_first_seq"`
	LogLastSeq  *uint64 `json:"log_last_seq"`
	Lag         *uint64 `json:"lag"`
	LogError    string  `json:"log_error"`
}

// source is GET /v1/sources's entry of source name; an error for a node that does not answer.
func (n *cnode) source(name string) (clusterSource, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url("/v1/sources"), nil)
	resp, err := client.Do(req)
	if err != nil {
		return clusterSource{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return clusterSource{}, fmt.Errorf("GET /v1/sources: %s", resp.Status)
	}
	var list []clusterSource
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return clusterSource{}, err
	}
	for _, s := range list {
		if s.Name == name {
			return s, nil
		}
	}
	return clusterSource{}, fmt.Errorf("GET /v1/sources: no source %q", name)
}

// mustSource is source, failing the test on an error.
func (n *cnode) mustSource(name string) clusterSource {
	n.t.Helper()
	s, err := n.source(name)
	if err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
	return s
}

// ingestAnswer is the answer of POST /v1/sources/{name}/messages in a cluster.
type ingestAnswer struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ingest posts lines (NDJSON, with ?query) to source on the node and returns the answer and
// its status; err for a request that got no answer.
func (n *cnode) ingest(ctx context.Context, source, query string, lines []string) (ingestAnswer, int, error) {
	body := strings.Join(lines, "\n") + "\n"
	u := n.url("/v1/sources/" + source + "/messages")
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return ingestAnswer{}, 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return ingestAnswer{}, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ingestAnswer{}, resp.StatusCode, err
	}
	var a ingestAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return ingestAnswer{}, resp.StatusCode, fmt.Errorf("answer %q: %w", b, err)
	}
	return a, resp.StatusCode, nil
}

// mustIngest is ingest that requires 200 and one id per line.
func (n *cnode) mustIngest(source, query string, lines ...string) []string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, code, err := n.ingest(ctx, source, query, lines)
	if err != nil || code != http.StatusOK {
		why := ""
		if a.Error != nil {
			why = a.Error.Code + ": " + a.Error.Message
		}
		n.t.Fatalf("%s: ingest into %s: %d %s %v", n.name, source, code, why, err)
	}
	if a.Accepted != len(lines) || len(a.IDs) != len(lines) {
		n.t.Fatalf("%s: ingest of %d lines into %s: %+v, want %d accepted and as many ids", n.name, len(lines), source, a, len(lines))
	}
	return a.IDs
}

// cevent is one event of a stream, with a status event's leader, and its JSON as the server
// wrote it.
type cevent struct {
	event
	Leader string `json:"leader"`
	// Raw is the event's JSON: an NDJSON line, an SSE event's data.
	Raw []byte `json:"-"`
	// SSEID is an SSE event's id: field.
	SSEID string `json:"-"`
}

// reader reads one stream (NDJSON or SSE) of a node on a goroutine of its own, until it ends
// or stop is called; the test's cleanup stops it.
type reader struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []cevent
	err    error // why the stream ended, once it has
}

// openReader subscribes to the node with query (already encoded) and returns once the server
// answered 200: the subscription exists from then on. sse asks for Server-Sent Events, with
// lastEventID as Last-Event-ID if not empty.
func (n *cnode) openReader(t *testing.T, query string, sse bool, lastEventID string) *reader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url("/v1/stream?"+query), nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if sse {
		req.Header.Set("Accept", "text/event-stream")
		if lastEventID != "" {
			req.Header.Set("Last-Event-ID", lastEventID)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s: GET /v1/stream?%s: %v", n.name, query, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("%s: GET /v1/stream?%s: %s %s", n.name, query, resp.Status, b)
	}
	r := &reader{name: n.name + " " + query, cancel: cancel, done: make(chan struct{})}
	go func() { // ends when the response does; stop waits for it
		defer close(r.done)
		defer resp.Body.Close()
		var err error
		if sse {
			err = r.readSSE(resp.Body)
		} else {
			err = r.readNDJSON(resp.Body)
		}
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *reader) add(ev cevent) error {
	if err := json.Unmarshal(ev.Raw, &ev); err != nil {
		return fmt.Errorf("bad event %q: %w", ev.Raw, err)
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return nil
}

func (r *reader) readNDJSON(body io.Reader) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if err := r.add(cevent{Raw: bytes.Clone(sc.Bytes())}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

func (r *reader) readSSE(body io.Reader) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 4<<20)
	var id string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				if err := r.add(cevent{Raw: data, SSEID: id}); err != nil {
					return err
				}
			}
			data = nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimPrefix(strings.TrimPrefix(line, "id:"), " ")
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// stop ends the stream and waits for the reading goroutine. Safe to call many times.
func (r *reader) stop() {
	r.cancel()
	<-r.done
}

// snapshot is every event read so far, and why the stream ended, if it has.
func (r *reader) snapshot() ([]cevent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), r.err
}

// messages is the messages read so far.
func (r *reader) messages() []cevent {
	evs, _ := r.snapshot()
	var ms []cevent
	for _, ev := range evs {
		if ev.Type == "message" {
			ms = append(ms, ev)
		}
	}
	return ms
}

// waitSeq waits until the stream has delivered a message of seq last or later, failing the test
// (with what it read) after d or when the stream ended.
func (r *reader) waitSeq(t *testing.T, last uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		evs, err := r.snapshot()
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Type == "message" {
				if evs[i].Seq >= last {
					return
				}
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: the stream ended (%v) before seq %d; it read %s", r.name, err, last, summary(evs))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no seq %d after %v; it read %s", r.name, last, d, summary(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// summary describes events for a failure: their count, and the first and last few.
func summary(evs []cevent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events", len(evs))
	show := func(evs []cevent) {
		for _, ev := range evs {
			fmt.Fprintf(&b, "\n  %s", ev.Raw)
		}
	}
	if len(evs) <= 10 {
		show(evs)
	} else {
		show(evs[:5])
		b.WriteString("\n  …")
		show(evs[len(evs)-5:])
	}
	return b.String()
}

// checkRun checks that evs are messages of one source, of consecutive seqs from first to last,
// with no other event (a status event is allowed when statusOK), and returns them.
func checkRun(t *testing.T, what string, evs []cevent, first, last uint64, statusOK bool) []cevent {
	t.Helper()
	var ms []cevent
	next := first
	for _, ev := range evs {
		switch {
		case ev.Type == "status" && statusOK:
			continue
		case ev.Type != "message":
			t.Fatalf("%s: unexpected event %s (after seq %d)", what, ev.Raw, next-1)
		case ev.Seq != next:
			t.Fatalf("%s: %s after seq %d, want seq %d (a hole or a duplicate)", what, ev.ID, next-1, next)
		case ev.ID != ev.Source+":"+strconv.FormatUint(ev.Seq, 10):
			t.Fatalf("%s: id %q for seq %d", what, ev.ID, ev.Seq)
		}
		ms = append(ms, ev)
		next++
		if ev.Seq == last {
			break
		}
	}
	if next != last+1 {
		t.Fatalf("%s: %d messages up to seq %d, want up to %d", what, len(ms), next-1, last)
	}
	return ms
}

// bodyN is the n of a {"n":N} body.
func bodyN(t *testing.T, ev cevent) int {
	t.Helper()
	var b struct {
		N *int `json:"n"`
	}
	if err := json.Unmarshal(ev.Body, &b); err != nil || b.N == nil {
		t.Fatalf("body %s of %s: want {\"n\": N} (%v)", ev.Body, ev.ID, err)
	}
	return *b.N
}

// jsView looks at the test's logs and leases in JetStream directly, as the nodes cannot tell
// it: which node the servers say holds a lease, where a log ends.
type jsView struct {
	nc     *natsgo.Conn
	js     jetstream.JetStream
	prefix string
}

// viewJetStream connects to urls; the connection is closed when the test ends.
func viewJetStream(t *testing.T, urls, prefix string) *jsView {
	t.Helper()
	nc, err := natsgo.Connect(urls, natsgo.Name("streamux-cluster-test"), natsgo.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &jsView{nc: nc, js: js, prefix: prefix}
}

// streamInfo is source's log stream's info.
func (v *jsView) streamInfo(source string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := v.js.Stream(ctx, cluster.StreamName(v.prefix, source))
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// lastSeq is where source's log ends; 0 if it does not exist or cannot be read.
func (v *jsView) lastSeq(source string) uint64 {
	info, err := v.streamInfo(source)
	if err != nil {
		return 0
	}
	return info.State.LastSeq
}

// lease is the holder of source's lease as the servers keep it, and the revision that holder
// last wrote; "" and 0 when none holds it.
func (v *jsView) lease(source string) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := v.js.KeyValue(ctx, cluster.LeaseBucket(v.prefix))
	if err != nil {
		return "", 0, err
	}
	e, err := kv.Get(ctx, cluster.EscapeName(source))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return string(e.Value()), e.Revision(), nil
}
