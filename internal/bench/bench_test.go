package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
)

// childEnv makes the test binary act as `streamux-bench server`, so that the subprocess path
// is tested without building the command.
const childEnv = "STREAMUX_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signalContext()
		err := ServeChild(ctx, os.Args[len(os.Args)-childArgs:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// childArgs is the number of arguments start passes to a server subprocess.
const childArgs = 6

// tiny returns options for scenario small enough for a test.
func tiny(scenario string) Options {
	o := Defaults(scenario)
	o.Clients, o.Keys, o.Rate = 12, 3, 200
	o.Duration, o.Warmup = 600*time.Millisecond, 100*time.Millisecond
	o.InProcess, o.Quiet, o.JSON = true, true, true
	o.Subs, o.MatchKeys = []int{50, 500}, 20
	o.Cycles, o.Parallel = 60, 8
	o.Messages, o.Rounds = 500, 1
	switch scenario {
	case "broadcast", "slow":
		o.Rate = 100
	case "churn":
		o.Clients = 4
	case "match":
		o.Duration = 100 * time.Millisecond
	}
	return o
}

func runJSON(t *testing.T, scenario string, o Options) Report {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Run(ctx, scenario, o, &out, &errb); err != nil {
		t.Fatalf("%s: %v\nstderr: %s", scenario, err, errb.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%s: the report is not JSON: %v\n%s", scenario, err, out.String())
	}
	if rep.Scenario != scenario || len(rep.Results) == 0 {
		t.Fatalf("%s: report %+v", scenario, rep)
	}
	return rep
}

// Every client scenario runs with tiny sizes against streamux and the bare loop, in process,
// and reports deliveries.
func TestClientScenarios(t *testing.T) {
	for _, sc := range []string{"fanout", "broadcast", "slow"} {
		t.Run(sc, func(t *testing.T) {
			rep := runJSON(t, sc, tiny(sc))
			servers := map[string]bool{}
			for _, r := range rep.Results {
				servers[r.Server] = true
				if r.Delivered <= 0 {
					t.Errorf("%s %s: delivered %v/s", r.Server, r.Phase, r.Delivered)
				}
				if r.P99ms <= 0 || r.MaxMs < r.P99ms {
					t.Errorf("%s %s: latency p99 %v max %v", r.Server, r.Phase, r.P99ms, r.MaxMs)
				}
			}
			if !servers[kindStreamux] || !servers[kindBare] {
				t.Errorf("servers measured: %v", servers)
			}
		})
	}
}

// The publisher's streaming request feeds both servers as the request per batch does.
func TestIngestStream(t *testing.T) {
	o := tiny("fanout")
	o.IngestStream = true
	rep := runJSON(t, "fanout", o)
	for _, r := range rep.Results {
		if r.Delivered <= 0 || r.Published <= 0 || r.Dropped != 0 {
			t.Errorf("%s: published %v/s, delivered %v/s, dropped %v", r.Server, r.Published, r.Delivered, r.Dropped)
		}
	}
	if len(rep.Results) != 2 {
		t.Errorf("servers measured: %d", len(rep.Results))
	}
}

func TestIdle(t *testing.T) {
	rep := runJSON(t, "idle", tiny("idle"))
	for _, r := range rep.Results {
		if r.Messages != 12 {
			t.Errorf("%s: %d clients received the probe, want 12", r.Server, r.Messages)
		}
		if r.GoroutinesAfter <= r.GoroutinesBefore {
			t.Errorf("%s: goroutines %v → %v", r.Server, r.GoroutinesBefore, r.GoroutinesAfter)
		}
	}
}

func TestChurn(t *testing.T) {
	rep := runJSON(t, "churn", tiny("churn"))
	after := rep.Results[len(rep.Results)-1]
	if after.Cycles != 60 || after.GoroutinesAfter <= 0 || after.HeapAfter <= 0 {
		t.Errorf("after: %+v", after)
	}
}

func TestMatch(t *testing.T) {
	rep := runJSON(t, "match", tiny("match"))
	if len(rep.Results) != 7 {
		t.Fatalf("%d results, want 7", len(rep.Results))
	}
	for _, r := range rep.Results {
		matches := r.Predicates != "none" && !strings.Contains(r.Predicates, "no match")
		if r.RoutedMessages == 0 || r.NsPerMessage <= 0 || (r.MatchesPerMsg > 0) != matches || r.Dropped != 0 {
			t.Errorf("%+v", r)
		}
	}
}

func TestRamp(t *testing.T) {
	o := tiny("fanout")
	o.Ramp, o.RampStep, o.MaxRate, o.Bare = true, 300*time.Millisecond, 400, false
	o.P99 = time.Minute
	rep := runJSON(t, "fanout", o)
	// The ramp goes up to 400 msg/s on a quiet machine; a loaded one may end it at a step
	// below, where the rate it reached stopped growing: what is checked is that it ramped and
	// said where it stopped.
	if len(rep.Results) < 2 || len(rep.Summary) == 0 || !strings.Contains(rep.Summary[0], "msg/s published") {
		t.Errorf("ramp: %d steps, summary %q", len(rep.Results), rep.Summary)
	}
}

// The default path: the server as a subprocess (here the test binary, acting as `streamux
// bench server`), its CPU and memory read from /proc.
func TestSubprocess(t *testing.T) {
	o := tiny("fanout")
	o.InProcess = false
	o.Child = []string{os.Args[0], "-test.run=^$", "--"}
	o.ChildEnv = []string{childEnv + "=1"}
	o.CPUProfile = t.TempDir() + "/cpu.pprof"
	o.Duration = time.Second
	rep := runJSON(t, "fanout", o)
	for _, r := range rep.Results {
		if r.Delivered <= 0 || r.CPUSeconds <= 0 || r.RSSBytes <= 0 || r.SchedP99ms <= 0 {
			t.Errorf("%s: %+v", r.Server, r)
		}
	}
	for _, f := range []string{o.CPUProfile, o.CPUProfile + ".bare"} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
}

func TestTable(t *testing.T) {
	o := tiny("fanout")
	o.JSON, o.Bare = false, false
	var out bytes.Buffer
	if err := Run(context.Background(), "fanout", o, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"streamux-bench fanout", "delivered/s", "p99 ms", "streamux", "machine:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestIngest(t *testing.T) {
	o := tiny("ingest")
	conn, err := amqp091.Dial(o.AMQPURL)
	if err != nil {
		t.Skipf("RabbitMQ is not reachable at %s: %v", o.AMQPURL, err)
	}
	conn.Close()
	o.CPUProfile = t.TempDir() + "/cpu.pprof"
	rep := runJSON(t, "ingest", o)
	for _, r := range rep.Results {
		if r.MsgsPerSec <= 0 || r.Messages != 500 {
			t.Errorf("%+v", r)
		}
	}
	if fi, err := os.Stat(o.CPUProfile); err != nil || fi.Size() == 0 {
		t.Errorf("profile %s: %v", o.CPUProfile, err)
	}
}

// The HTTP variants of ingest post every message and time them until routed.
func TestIngestHTTP(t *testing.T) {
	for _, via := range []string{"ndjson", "envelope", "stream"} {
		o := tiny("ingest")
		o.IngestVia, o.Messages, o.Rounds = via, 2500, 2
		rep := runJSON(t, "ingest", o)
		if r := rep.Results[0]; r.MsgsPerSec <= 0 || r.Messages != 5000 {
			t.Errorf("%s: %+v", via, r)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		scenario string
		change   func(*Options)
		want     string
	}{
		{"nope", func(*Options) {}, "unknown scenario"},
		{"fanout", func(o *Options) { o.Clients = 0 }, "positive"},
		{"fanout", func(o *Options) { o.Policy = "x" }, "-policy"},
		{"fanout", func(o *Options) { o.Source = "kafka" }, "-source"},
		{"fanout", func(o *Options) { o.Ramp, o.Source = true, "demo" }, "-ramp"},
		{"fanout", func(o *Options) { o.URL, o.Source = "http://x", "demo" }, "-url"},
		{"fanout", func(o *Options) { o.PublishEvery = 0 }, "-publish-every"},
		{"fanout", func(o *Options) { o.IngestStream, o.Source = true, "amqp" }, "-ingest-stream"},
		{"ingest", func(o *Options) { o.IngestVia = "kafka" }, "-ingest-via"},
		{"cluster", func(*Options) {}, "-inprocess"},
		{"cluster", func(o *Options) { o.InProcess, o.ClusterStorage = false, "disk" }, "-cluster-storage"},
		{"cluster", func(o *Options) { o.InProcess, o.ClusterReplicas = false, 2 }, "-cluster-replicas"},
		{"cluster", func(o *Options) { o.InProcess, o.Source = false, "demo" }, "-source"},
	} {
		o := tiny(c.scenario)
		c.change(&o)
		err := Run(context.Background(), c.scenario, o, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.scenario, err, c.want)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(i, int64(i)*int64(time.Millisecond)/10) // 0.1 ms … 100 ms
	}
	s := h.summary()
	near := func(got, want time.Duration) bool { return got > want*96/100 && got < want*104/100 }
	if s.n != 1000 || !near(s.p50, 50*time.Millisecond) || !near(s.p99, 99*time.Millisecond) || s.max != 100*time.Millisecond {
		t.Errorf("summary %+v", s)
	}
	for us := uint64(0); us < 1<<30; us = us*3/2 + 1 {
		i := bucketOf(us)
		if v := bucketValue(i); v < float64(us)*0.96 || v > float64(us)*1.04+1 {
			t.Errorf("%d µs: bucket %d is %v", us, i, v)
		}
	}
}

func TestFrameParsing(t *testing.T) {
	for _, c := range []struct {
		in     []byte
		length uint64
		hl     int
		ok     bool
	}{
		{[]byte{0x81, 5}, 5, 2, true},
		{[]byte{0x81, 126, 1, 0}, 256, 4, true},
		{[]byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}, 65536, 10, true},
		{[]byte{0x81, 126, 1}, 0, 0, false},
		{[]byte{0x81}, 0, 0, false},
	} {
		h, hl, ok := frameHeader(c.in)
		if ok != c.ok || ok && (h.len != c.length || hl != c.hl) {
			t.Errorf("% x: got %+v %d %v", c.in, h, hl, ok)
		}
	}
	if v, ok := sentAt([]byte(`{"type":"message","body":{"ts":1700000000123456789,"pad":"x"}}`)); !ok || v != 1700000000123456789 {
		t.Errorf("ts: %d %v", v, ok)
	}
	if v, ok := sentAt([]byte(`{"type":"message","time":"2026-11-25T16:00:00.123Z","body":{"n":1}}`)); !ok || v != time.Date(2026, 11, 25, 16, 0, 0, 123e6, time.UTC).UnixNano() {
		t.Errorf("time: %d %v", v, ok)
	}
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# HELP go_goroutines x\ngo_goroutines 12\nstreamux_source_dropped_total{source=\"a\"} 3\nstreamux_source_dropped_total{source=\"b\"} 4\n")
	}))
	defer srv.Close()
	m, err := scrape(context.Background(), srv.Client(), srv.URL, "go_goroutines", "streamux_source_dropped_total")
	if err != nil || m["go_goroutines"] != 12 || m["streamux_source_dropped_total"] != 7 {
		t.Errorf("%v %v", m, err)
	}
}

func TestSchedQuantile(t *testing.T) {
	before := schedHist{Buckets: []float64{0, 0.001, 0.01, 3600}, Counts: []uint64{5, 5, 5}}
	after := schedHist{Buckets: before.Buckets, Counts: []uint64{5 + 90, 5 + 9, 5 + 1}}
	if q, ok := after.quantile(before, 0.5); !ok || q != time.Millisecond {
		t.Errorf("p50 %v %v", q, ok)
	}
	if q, ok := after.quantile(before, 0.99); !ok || q != 10*time.Millisecond {
		t.Errorf("p99 %v %v", q, ok)
	}
	if q, ok := after.minus(before).quantile(schedHist{}, 0.5); !ok || q != time.Millisecond {
		t.Errorf("p50 of the difference: %v %v", q, ok)
	}
	if _, ok := (schedHist{}).quantile(schedHist{}, 0.5); ok {
		t.Error("a quantile of nothing")
	}
	if h := readSched(); len(h.Counts) == 0 || len(h.Buckets) != len(h.Counts)+1 {
		t.Errorf("readSched: %d buckets, %d counts", len(h.Buckets), len(h.Counts))
	}
}
