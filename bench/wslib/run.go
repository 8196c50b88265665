package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// options are the runner's flags.
type options struct {
	libs           []string
	idleLibs       []string // measured idle only
	clients        int
	keys           int
	broadcastRates []float64
	fanoutRate     float64
	slice          time.Duration
	slices         int
	warmup         time.Duration
	queueLen       int
	parallel       int
	cpuprofile     string // a directory for the servers' CPU profiles of measured slices
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("wslib", flag.ContinueOnError)
	libs := fs.String("libs", "gobwas,gorilla,coder,gws", "servers to measure, by library: gobwas, gorilla, coder, gws; variants gobwas-1w (no joined writes), gobwas-nd (no write deadline), gobwas-h (writer on the HTTP handler's goroutine)")
	idleLibs := fs.String("idle-libs", "gobwas-h", "more servers, measured idle only (empty: none)")
	fs.IntVar(&o.clients, "clients", 1000, "clients connected to each server")
	fs.IntVar(&o.keys, "keys", 100, "key groups in fanout; clients are spread evenly over them")
	rates := fs.String("broadcast-rates", "40,200", "events/s published to every client, one scenario each (empty: none)")
	fs.Float64Var(&o.fanoutRate, "fanout-rate", 4000, "events/s published in fanout, each to one key group in turn (0: no fanout)")
	fs.DurationVar(&o.slice, "slice", 3*time.Second, "how long each server publishes in one slice")
	fs.IntVar(&o.slices, "slices", 3, "slices per server and scenario")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured publishing per server before each scenario")
	fs.IntVar(&o.queueLen, "queue", 1024, "events a connection's queue holds before the server drops")
	fs.IntVar(&o.parallel, "parallel", 16, "clients dialling at once")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write each server's CPU profile of each measured slice to `dir`/LIB-SCENARIO-SLICE.pprof")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, name := range strings.Split(*libs, ",") {
		if _, ok := libraries[name]; !ok {
			return o, fmt.Errorf("-libs: no library %q", name)
		}
		o.libs = append(o.libs, name)
	}
	for _, name := range strings.Split(*idleLibs, ",") {
		if name == "" {
			continue
		}
		if _, ok := libraries[name]; !ok {
			return o, fmt.Errorf("-idle-libs: no library %q", name)
		}
		o.idleLibs = append(o.idleLibs, name)
	}
	for _, f := range strings.Split(*rates, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return o, fmt.Errorf("-broadcast-rates: bad rate %q", f)
		}
		o.broadcastRates = append(o.broadcastRates, r)
	}
	if o.cpuprofile != "" {
		dir, err := filepath.Abs(o.cpuprofile)
		if err != nil {
			return o, err
		}
		o.cpuprofile = dir
	}
	if o.clients <= 0 || o.keys <= 0 || o.slices <= 0 || o.slice <= 0 || o.queueLen <= 0 || o.parallel <= 0 {
		return o, errors.New("-clients, -keys, -slices, -slice, -queue and -parallel must be positive")
	}
	return o, nil
}

// scenario is one load: events published at a fixed rate to every client or to one key group.
type scenario struct {
	name string
	mode string // broadcast or fanout
	rate float64
}

// srv is one server subprocess.
type srv struct {
	name     string
	idx      int  // its index in the reactors' counts
	idleOnly bool // measured idle only
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	addr     string
	hc       *http.Client

	idleBase, idleConns, afterLoad memSnap
	results                        map[string]*acc // by scenario
}

// memSnap is a server's memory after a forced GC.
type memSnap struct {
	memStats
	rss uint64
}

func startServer(exe, name string, idx, queueLen int) (*srv, error) {
	cmd := exec.Command(exe, "server", "-lib", name, "-queue", strconv.Itoa(queueLen))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &srv{name: name, idx: idx, cmd: cmd, stdin: stdin, results: map[string]*acc{},
		hc: &http.Client{Timeout: 30 * time.Second}}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		s.close()
		return nil, fmt.Errorf("server %s did not start: %q %v", name, line, err)
	}
	s.addr = addr
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return s, nil
}

// close ends the server: it exits when its standard input closes.
func (s *srv) close() {
	_ = s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// post sends a control request and decodes its JSON answer into out, if not nil.
func (s *srv) post(path string, out any) error {
	resp, err := s.hc.Post("http://"+s.addr+path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", s.name, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// gc forces a GC in the server and returns its memory afterwards.
func (s *srv) gc() (memSnap, error) {
	var m memSnap
	if err := s.post("/gc", &m.memStats); err != nil {
		return m, err
	}
	var err error
	m.rss, err = procRSS(s.cmd.Process.Pid)
	return m, err
}

// connect dials n clients to s, client i in key group i%keys.
func connect(ctx context.Context, rs reactors, s *srv, n, keys, parallel int) error {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			url := fmt.Sprintf("ws://%s/ws?key=%d", s.addr, i%keys)
			if err := rs.dial(ctx, url, i, s.idx); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: client %d: %w", s.name, i, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// acc accumulates a server's measured slices of one scenario.
type acc struct {
	pub    pubResult // summed over slices
	frames snapshot  // received in the slices
	window time.Duration
	cpu    time.Duration // the server's
	self   time.Duration // the client's (this process)
	writes uint64        // write system calls, where the server counts them
	perDel []float64     // CPU µs per delivery, slice by slice
}

// slice makes s publish sc for d, waits until its clients received all it queued (or stopped
// receiving), and returns what happened from the start to the last frame received.
func slice(rs reactors, s *srv, sc scenario, keys int, d time.Duration, profile string) (acc, error) {
	var a acc
	w0, err := s.writes()
	if err != nil {
		return a, err
	}
	before := rs.snapshot(s.idx)
	cpu0, err := procCPU(s.cmd.Process.Pid)
	if err != nil {
		return a, err
	}
	self0 := selfCPU()
	t0 := time.Now()
	start := fmt.Sprintf("/start?mode=%s&rate=%g&keys=%d", sc.mode, sc.rate, keys)
	if profile != "" {
		start += "&profile=" + url.QueryEscape(profile)
	}
	if err := s.post(start, nil); err != nil {
		return a, err
	}
	time.Sleep(d)
	if err := s.post("/stop", &a.pub); err != nil {
		return a, err
	}
	tStop := time.Now()
	want := a.pub.Attempted - a.pub.Dropped
	var got uint64
	last := tStop
	for {
		n := rs.frames(s.idx) - before.frames
		now := time.Now()
		if n > got {
			got, last = n, now
		}
		if got >= want || now.Sub(last) > 500*time.Millisecond || now.Sub(tStop) > 10*time.Second {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cpu1, err := procCPU(s.cmd.Process.Pid)
	if err != nil {
		return a, err
	}
	a.cpu = cpu1 - cpu0
	a.self = selfCPU() - self0
	a.frames = rs.snapshot(s.idx).minus(before)
	a.window = last.Sub(t0)
	w1, err := s.writes()
	a.writes = w1 - w0
	a.perDel = []float64{float64(a.cpu.Microseconds()) / float64(max(a.frames.frames, 1))}
	return a, err
}

// writes is how many write system calls s counted so far.
func (s *srv) writes() (uint64, error) {
	resp, err := s.hc.Get("http://" + s.addr + "/writes")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// frames is how many frames server i's clients received.
func (rs reactors) frames(i int) uint64 {
	var n uint64
	for _, re := range rs {
		n += re.counts[i].frames.Load()
	}
	return n
}

func (a *acc) add(b acc) {
	a.pub.Published += b.pub.Published
	a.pub.Attempted += b.pub.Attempted
	a.pub.Dropped += b.pub.Dropped
	a.frames.add(b.frames)
	a.window += b.window
	a.cpu += b.cpu
	a.self += b.self
	a.writes += b.writes
	a.perDel = append(a.perDel, b.perDel...)
}

func runMain(args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	start := time.Now()
	header(o)

	var scenarios []scenario
	for _, r := range o.broadcastRates {
		scenarios = append(scenarios, scenario{name: fmt.Sprintf("broadcast %g/s", r), mode: "broadcast", rate: r})
	}
	if o.fanoutRate > 0 {
		scenarios = append(scenarios, scenario{name: fmt.Sprintf("fanout %g/s over %d keys", o.fanoutRate, o.keys), mode: "fanout", rate: o.fanoutRate})
	}

	var servers, loaded []*srv
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	for i, name := range append(o.libs, o.idleLibs...) {
		s, err := startServer(exe, name, i, o.queueLen)
		if err != nil {
			return err
		}
		s.idleOnly = i >= len(o.libs)
		servers = append(servers, s)
		if !s.idleOnly {
			loaded = append(loaded, s)
		}
	}
	rs, err := newReactors(len(servers))
	if err != nil {
		return err
	}
	defer rs.close()

	// idle: memory before and after the clients connect.
	ctx := context.Background()
	for _, s := range servers {
		if s.idleBase, err = s.gc(); err != nil {
			return err
		}
		t := time.Now()
		if err := connect(ctx, rs, s, o.clients, o.keys, o.parallel); err != nil {
			return err
		}
		fmt.Printf("# %s: %d clients connected in %.1fs\n", s.name, o.clients, time.Since(t).Seconds())
		time.Sleep(500 * time.Millisecond)
		if s.idleConns, err = s.gc(); err != nil {
			return err
		}
		if s.idleConns.Conns != o.clients {
			return fmt.Errorf("%s: %d connections registered, want %d", s.name, s.idleConns.Conns, o.clients)
		}
	}

	// load: the servers take turns, slice by slice, in an order that rotates every round.
	for _, sc := range scenarios {
		for _, s := range loaded {
			if _, err := slice(rs, s, sc, o.keys, o.warmup, ""); err != nil {
				return err
			}
			s.results[sc.name] = &acc{}
		}
		for round := range o.slices {
			for k := range loaded {
				s := loaded[(k+round)%len(loaded)]
				profile := ""
				if o.cpuprofile != "" {
					profile = filepath.Join(o.cpuprofile, fmt.Sprintf("%s-%s%g-%d.pprof", s.name, sc.mode, sc.rate, round))
				}
				a, err := slice(rs, s, sc, o.keys, o.slice, profile)
				if err != nil {
					return err
				}
				s.results[sc.name].add(a)
			}
		}
		fmt.Printf("# %s measured at %.0fs\n", sc.name, time.Since(start).Seconds())
	}
	for _, s := range servers {
		if s.afterLoad, err = s.gc(); err != nil {
			return err
		}
	}

	report(o, servers, loaded, scenarios)
	fmt.Printf("\n# load average at the end: %s\n# whole run: %.0fs\n", loadavg(), time.Since(start).Seconds())
	return nil
}

// header prints what the run is and where.
func header(o options) {
	fmt.Printf("# wslib %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("# %s\n", time.Now().UTC().Format(time.RFC3339))
	if out, err := exec.Command("uptime").Output(); err == nil {
		fmt.Printf("# uptime:%s", strings.TrimPrefix(string(out), " "))
	}
	fmt.Printf("# load average at the start: %s\n", loadavg())
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Printf("# %s", bi.GoVersion)
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/gobwas/ws", "github.com/gorilla/websocket", "github.com/coder/websocket", "github.com/lxzan/gws":
				fmt.Printf(", %s %s", d.Path, d.Version)
			}
		}
		fmt.Println()
	}
	fmt.Printf("# %d clients per server, %d key groups, %d slices of %s per server and scenario, queue %d\n",
		o.clients, o.keys, o.slices, o.slice, o.queueLen)
}

// report prints the tables.
func report(o options, servers, loaded []*srv, scenarios []scenario) {
	fmt.Printf("\n## idle: %d clients connected, no traffic (RSS and Go memory after runtime.GC + debug.FreeOSMemory)\n\n", o.clients)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "library\tRSS before\tRSS/conn KiB\theap/conn KiB\tstack/conn KiB\tgoroutines/conn\tafter load: RSS/conn KiB\theap/conn KiB\t")
	for _, s := range servers {
		n := float64(o.clients)
		perConn := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n / 1024 }
		after := "-\t-"
		if !s.idleOnly {
			after = fmt.Sprintf("%.1f\t%.1f", perConn(s.afterLoad.rss, s.idleBase.rss), perConn(s.afterLoad.HeapAlloc, s.idleBase.HeapAlloc))
		}
		fmt.Fprintf(tw, "%s\t%.1f MiB\t%.1f\t%.1f\t%.1f\t%.2f\t%s\t\n", s.name,
			float64(s.idleBase.rss)/(1<<20),
			perConn(s.idleConns.rss, s.idleBase.rss),
			perConn(s.idleConns.HeapAlloc, s.idleBase.HeapAlloc),
			perConn(s.idleConns.StackInuse, s.idleBase.StackInuse),
			float64(s.idleConns.Goroutines-s.idleBase.Goroutines)/n,
			after)
	}
	tw.Flush()

	for _, sc := range scenarios {
		per := float64(o.clients)
		if sc.mode == "fanout" {
			per = float64(o.clients) / float64(o.keys)
		}
		offered := sc.rate * per
		fmt.Printf("\n## %s, %d clients: %s deliveries/s offered (%d × %s slices)\n\n", sc.name, o.clients, thousands(offered), o.slices, o.slice)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "library\tdelivered/s\t% offered\tlost\tdropped\tserver CPU\tCPU µs/deliv\t(slices)\tdeliv/CPU-s\tframes/write\tp50 ms\tp99 ms\tmax ms\tcut\tclient CPU\t")
		for _, s := range loaded {
			a := s.results[sc.name]
			secs := a.window.Seconds()
			lost := int64(a.pub.Attempted) - int64(a.pub.Dropped) - int64(a.frames.frames)
			perWrite := "-"
			if a.writes > 0 {
				perWrite = fmt.Sprintf("%.2f", float64(a.frames.frames)/float64(a.writes))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%d\t%d\t%.0f%%\t%.2f\t%.1f–%.1f\t%s\t%s\t%.2f\t%.2f\t%.1f\t%d\t%.0f%%\t\n", s.name,
				thousands(float64(a.frames.frames)/secs),
				100*float64(a.frames.frames)/secs/offered,
				lost, a.pub.Dropped,
				100*a.cpu.Seconds()/secs,
				float64(a.cpu.Microseconds())/float64(max(a.frames.frames, 1)),
				slices.Min(a.perDel), slices.Max(a.perDel),
				thousands(float64(a.frames.frames)/max(a.cpu.Seconds(), 1e-9)),
				perWrite,
				a.frames.quantile(0.50)/1e6, a.frames.quantile(0.99)/1e6, a.frames.max()/1e6, a.frames.closed,
				100*a.self.Seconds()/secs)
		}
		tw.Flush()
	}
	fmt.Println("\nlost: deliveries the server queued that no client received (must be 0); dropped: deliveries")
	fmt.Println("the server dropped because the connection's queue was full; CPU µs/deliv: server CPU time over")
	fmt.Println("frames received, over all slices, and (slices) its lowest and highest slice; frames/write: frames")
	fmt.Println("received per write system call, where the server counts them (gobwas; the others write one frame")
	fmt.Println("per call); latency: from when the event was due to be published to the client's read; cut:")
	fmt.Println("client connections that ended during the slices.")
}

// thousands formats v rounded, with commas between thousands.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
