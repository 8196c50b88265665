package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	rpprof "runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/server"
)

// The servers a run can measure.
const (
	kindStreamux = "streamux"
	kindBare     = "bare"      // one frame per event
	kindBareJoin = "bare-join" // up to 64 events joined in one frame
)

// target is a server under load: where it listens and how to read what it costs.
type target struct {
	kind   string
	base   string // http://host:port
	source string // the http source to publish to and read from
	mode   string // "subprocess", "in-process" or "url"
	pid    int    // the process to read /proc of; 0 is this process, -1 none
	debug  string // a subprocess's debug server: pprof, GC, runtime counters
	httpc  *http.Client
	stop   func() error
	logs   *tail
}

// usage is the server's CPU time so far and its resident set now.
func (t *target) usage(ctx context.Context) (cpu time.Duration, rss int64, ok bool) {
	if t.pid >= 0 {
		cpu, rss, err := procStat(t.pid)
		return cpu, rss, err == nil
	}
	m, err := scrape(ctx, t.httpc, t.base+"/metrics", "process_cpu_seconds_total", "process_resident_memory_bytes")
	if err != nil || len(m) < 2 {
		return 0, 0, false
	}
	return time.Duration(m["process_cpu_seconds_total"] * float64(time.Second)), int64(m["process_resident_memory_bytes"]), true
}

// gc collects the server's garbage and returns freed memory to the system, so that the resident
// sets compared are not each a different point of the collector's cycle. A server at -url
// cannot be asked; gc reports false then.
func (t *target) gc(ctx context.Context) bool {
	switch {
	case t.debug != "":
		return t.get(ctx, t.debug+"/debug/bench/gc", nil) == nil
	case t.mode == "in-process":
		runtime.GC()
		debug.FreeOSMemory()
		return true
	}
	return false
}

// runtimeStats reads the server's goroutines, heap in use and live heap: from streamux's
// /metrics (go_goroutines, go_memstats_heap_inuse_bytes, go_memstats_heap_alloc_bytes), or from
// the bare server's debug endpoint. After a forced GC, the live heap is what is still reachable,
// and the heap in use adds the spans that hold it, partly empty.
func (t *target) runtimeStats(ctx context.Context) (runtimeJSON, error) {
	if t.kind == kindStreamux {
		m, err := scrape(ctx, t.httpc, t.base+"/metrics", "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes")
		if err != nil {
			return runtimeJSON{}, err
		}
		return runtimeJSON{Goroutines: m["go_goroutines"], HeapInuse: m["go_memstats_heap_inuse_bytes"], HeapLive: m["go_memstats_heap_alloc_bytes"]}, nil
	}
	if t.debug == "" {
		return readRuntime(), nil
	}
	var rs runtimeJSON
	err := t.get(ctx, t.debug+"/debug/bench/runtime", &rs)
	return rs, err
}

// readRuntime reads this process's runtime figures.
func readRuntime() runtimeJSON {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtimeJSON{Goroutines: float64(runtime.NumGoroutine()), HeapInuse: float64(ms.HeapInuse), HeapLive: float64(ms.HeapAlloc), Sched: readSched()}
}

type runtimeJSON struct {
	Goroutines float64 `json:"goroutines"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	HeapLive   float64 `json:"heap_live_bytes"`
	// Sched is runtime/metrics' /sched/latencies:seconds: how long goroutines waited for a P
	// to run on, from the start of the process.
	Sched schedHist `json:"sched"`
}

// schedHist is a cumulative histogram of scheduling latencies.
type schedHist struct {
	Buckets []float64 `json:"buckets"` // len(Counts)+1 boundaries, in seconds
	Counts  []uint64  `json:"counts"`
}

func readSched() schedHist {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return schedHist{}
	}
	h := s[0].Value.Float64Histogram()
	// JSON has no infinities: the open ends become 0 and an hour.
	b := make([]float64, len(h.Buckets))
	for i, v := range h.Buckets {
		switch {
		case math.IsInf(v, -1):
			v = 0
		case math.IsInf(v, 1):
			v = 3600
		}
		b[i] = v
	}
	return schedHist{Buckets: b, Counts: h.Counts}
}

// quantile is the q-quantile of the latencies recorded between earlier and h.
func (h schedHist) quantile(earlier schedHist, q float64) (time.Duration, bool) {
	if len(earlier.Counts) == 0 && len(h.Counts) > 0 {
		earlier.Counts = make([]uint64, len(h.Counts))
	}
	if len(h.Counts) == 0 || len(earlier.Counts) != len(h.Counts) {
		return 0, false
	}
	var total uint64
	d := make([]uint64, len(h.Counts))
	for i := range d {
		d[i] = h.Counts[i] - earlier.Counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0, false
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, c := range d {
		seen += c
		if seen >= rank {
			return time.Duration(h.Buckets[i+1] * float64(time.Second)), true
		}
	}
	return 0, false
}

// sched reads the server's scheduling-latency histogram; false for a server at -url.
func (t *target) sched(ctx context.Context) (schedHist, bool) {
	switch {
	case t.debug != "":
		var rs runtimeJSON
		if err := t.get(ctx, t.debug+"/debug/bench/runtime", &rs); err != nil {
			return schedHist{}, false
		}
		return rs.Sched, len(rs.Sched.Counts) > 0
	case t.mode == "in-process":
		return readSched(), true
	}
	return schedHist{}, false
}

// profile writes a CPU profile of the server over the next d to file. A subprocess is asked
// through its debug server; in process, the profile covers the whole process, clients included.
func (t *target) profile(ctx context.Context, d time.Duration, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if t.debug != "" {
		secs := max(int(d.Round(time.Second)/time.Second), 1)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.debug, secs), nil)
		if err != nil {
			return err
		}
		resp, err := t.httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("profile: %s", resp.Status)
		}
		_, err = io.Copy(f, resp.Body)
		return err
	}
	if t.mode != "in-process" {
		return errors.New("cannot profile a server at -url; run it with its own profiling")
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		return err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	rpprof.StopCPUProfile()
	return nil
}

// heapProfile writes the server's heap profile, after a GC, to file.
func (t *target) heapProfile(ctx context.Context, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	switch {
	case t.debug != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.debug+"/debug/pprof/heap?gc=1", nil)
		if err != nil {
			return err
		}
		resp, err := t.httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(f, resp.Body)
		return err
	case t.mode == "in-process":
		runtime.GC()
		return rpprof.Lookup("heap").WriteTo(f, 0)
	}
	return errors.New("cannot take the heap profile of a server at -url")
}

func (t *target) get(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := t.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if into == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// serverConfig is the configuration a bench run gives streamux.
type serverConfig struct {
	source      string  // http (default), demo or amqp
	sourceName  string  // the source's name
	demoRate    float64 // the demo source's rate
	amqpURL     string
	exchange    string
	queueEvents int
	maxBatch    int
	writeDelay  time.Duration
	// name names the configuration file when several servers of one kind run at once; dataDir,
	// if set, is the server's own data directory.
	name    string
	dataDir string
	// cluster, if set, is the cluster: block: this server is a node of a cluster.
	cluster *clusterBlock
	// extra is YAML added at the end (the sink scenario's sinks:).
	extra string
}

// clusterBlock is the cluster: block of a node's configuration.
type clusterBlock struct {
	natsURL  string
	prefix   string
	node     string
	storage  string
	replicas int
}

func (c serverConfig) yaml() string {
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nshutdown_grace: 3s\n")
	if c.dataDir != "" {
		fmt.Fprintf(&b, "data_dir: %q\n", c.dataDir)
	}
	b.WriteString("sources:\n")
	fmt.Fprintf(&b, "  - name: %s\n", c.sourceName)
	switch c.source {
	case "demo":
		fmt.Fprintf(&b, "    type: demo\n    rate: %g\n    payload: rich\n", c.demoRate)
	case "amqp":
		fmt.Fprintf(&b, "    type: amqp\n    url: %q\n    exchange: %s\n    exchange_type: topic\n    durable: false\n", c.amqpURL, c.exchange)
	default:
		b.WriteString("    type: http\n")
	}
	if c.queueEvents > 0 {
		fmt.Fprintf(&b, "limits:\n  queue_events: %d\n", c.queueEvents)
	}
	if c.maxBatch > 0 || c.writeDelay > 0 {
		b.WriteString("stream:\n")
	}
	if c.maxBatch > 0 {
		fmt.Fprintf(&b, "  max_batch: %d\n", c.maxBatch)
	}
	if c.writeDelay > 0 {
		fmt.Fprintf(&b, "  write_delay: %v\n", c.writeDelay)
	}
	if cl := c.cluster; cl != nil {
		fmt.Fprintf(&b, "cluster:\n  nats:\n    url: %q\n  stream_prefix: %s\n  node: %s\n  storage: %s\n  replicas: %d\n",
			cl.natsURL, cl.prefix, cl.node, cl.storage, cl.replicas)
	}
	b.WriteString(c.extra)
	return b.String()
}

// start starts a server of kind: a subprocess (the default), in this process, or, for
// streamux with -url, the one already running there.
func (r *runner) start(ctx context.Context, kind string, sc serverConfig) (*target, error) {
	o := &r.opt
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 2 * time.Minute}
	t := &target{kind: kind, source: sc.sourceName, httpc: httpc, pid: -1, logs: &tail{max: 16 << 10}}
	if kind == kindStreamux && o.URL != "" {
		t.mode, t.base, t.pid = "url", strings.TrimRight(o.URL, "/"), -1
		if o.PID > 0 {
			t.pid = o.PID
		}
		t.stop = func() error { httpc.CloseIdleConnections(); return nil }
		return t, nil
	}
	name := kind
	if sc.name != "" {
		name = sc.name
	}
	cfgPath := filepath.Join(r.dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(sc.yaml()), 0o600); err != nil {
		return nil, err
	}
	if o.InProcess {
		return r.startInProcess(ctx, t, cfgPath)
	}
	args := append([]string{}, o.Child[1:]...)
	if o.HeapProfile != "" {
		args = append(args, "-memprofilerate", "4096")
	}
	args = append(args, "-kind", kind, "-config", cfgPath, "-source", sc.sourceName)
	cmd := exec.Command(o.Child[0], args...)
	cmd.Env = append(os.Environ(), o.ChildEnv...)
	cmd.Stderr = t.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", kind, err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() { // reads the child's stdout until it exits; the child's exit ends it
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { exited <- cmd.Wait() }() // stop waits for it
	var addr childAddr
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &addr); err != nil {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("%s server said %q: %v", kind, line, err)
		}
	case err := <-exited:
		return nil, fmt.Errorf("%s server exited: %v\n%s", kind, err, t.logs)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("%s server did not start within 30s\n%s", kind, t.logs)
	}
	t.mode, t.base, t.debug, t.pid = "subprocess", addr.URL, addr.Debug, cmd.Process.Pid
	t.stop = func() error {
		httpc.CloseIdleConnections()
		if cmd.Process.Signal(syscall.SIGTERM) != nil {
			_ = cmd.Process.Kill() // no SIGTERM here (Windows)
		}
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("%s server: %v\n%s", kind, err, t.logs)
			}
			return nil
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s server did not stop within 15s; killed", kind)
		}
	}
	return t, nil
}

func (r *runner) startInProcess(ctx context.Context, t *target, cfgPath string) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(t.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	switch t.kind {
	case kindStreamux:
		cfg, err := config.Load(cfgPath)
		if err != nil {
			ln.Close()
			cancel()
			return nil, err
		}
		go func() { done <- serve(sctx, cfg, ln, log) }() // stop waits for it
	default:
		b := newBareServer(t.source, t.kind == kindBareJoin)
		go func() { done <- b.serve(sctx, ln) }() // stop waits for it
	}
	t.mode, t.base, t.pid = "in-process", "http://"+ln.Addr().String(), 0
	t.stop = func() error {
		t.httpc.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return fmt.Errorf("%s server did not stop within 15s", t.kind)
		}
	}
	return t, nil
}

// childAddr is the line a server subprocess writes to its stdout once it listens.
type childAddr struct {
	URL   string `json:"url"`
	Debug string `json:"debug"`
}

// serve runs streamux, as the command does (internal/server), on ln until ctx is done. A
// shutdown that ran out of grace (a client that never reads, cut at the end) is still a stop.
func serve(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error {
	srv, err := server.New(cfg, server.Options{Log: log})
	if err != nil {
		ln.Close()
		return err
	}
	if err := srv.Run(ctx, ln); err != nil && !errors.Is(err, server.ErrNotClean) {
		return err
	}
	return nil
}

// ServeChild is `streamux-bench server`: the server side of a bench run, started by the bench
// as a subprocess of the same binary so that its CPU time and memory are its own. It serves
// streamux (internal/server, with the -config file) or the bare loop on 127.0.0.1:0 and a debug
// server (pprof, a forced GC, runtime counters) on another port, writes both addresses as one
// JSON line to stdout, and serves until ctx is done.
func ServeChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux-bench server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", kindStreamux, "streamux, bare or bare-join")
	cfgPath := fs.String("config", "", "streamux's configuration file")
	source := fs.String("source", "bench", "the bare server's source name")
	memRate := fs.Int("memprofilerate", 0, "runtime.MemProfileRate, for finer heap profiles (0: Go's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var cfg *config.Config
	listen := "127.0.0.1:0"
	if *kind == kindStreamux {
		if *cfgPath == "" {
			return errors.New("bench server: -config is required")
		}
		c, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		cfg, listen = c, c.Listen
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return err
	}
	ds := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = ds.Serve(dln) }() // waited for below
	defer func() { ds.Close(); wg.Wait() }()
	line, _ := json.Marshal(childAddr{URL: "http://" + ln.Addr().String(), Debug: "http://" + dln.Addr().String()})
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		ln.Close()
		return err
	}
	switch *kind {
	case kindStreamux:
		return serve(ctx, cfg, ln, log)
	case kindBare, kindBareJoin:
		return newBareServer(*source, *kind == kindBareJoin).serve(ctx, ln)
	}
	ln.Close()
	return fmt.Errorf("bench server: unknown -kind %q", *kind)
}

func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/bench/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/debug/bench/runtime", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(readRuntime())
	})
	return mux
}

// tail keeps the last max bytes written to it: a server's log, shown when it fails.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
