package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The cluster scenario measures streamux with a cluster: block (every source's messages go
// through a NATS JetStream log, which every node reads into its router) against streamux
// alone, in one run. It starts five streamux processes (streamux-bench server), which run
// side by side for the whole run:
//
//	alone     no cluster: block
//	1 node    a cluster of one node (streams <prefix>1_…)
//	3 nodes   a cluster of three nodes (streams <prefix>3_…), node 1 taking the ingest
//
// and measures in three stages, the groups taking turns as the load scenarios' servers do
// (interleave.go), so that other work on the machine weighs on each alike:
//
//	hop     -rate msg/s into the http source, one client reading everything on alone and on
//	        nodes 1 and 2 of three; node 3 reads the log for no client. End-to-end latency
//	        per client; CPU per message of every process, the JetStream server's included.
//	append  requests of 1,000 NDJSON lines into alone and into the node of 1 node, from 1,
//	        2, 4, … posters at once until the rate accepted stops growing.
//	fanout  -clients clients, client i reading key == "k<i mod -keys>", at -rate: all on
//	        alone, all on 1 node, spread over the nodes of 3 nodes (client i on node i mod 3).
//
// Every run uses a stream prefix of its own and deletes its streams at the end.

// clusterRun is one run of the cluster scenario: the servers it started and the streams they
// made.
type clusterRun struct {
	r       *runner
	prefix  string // begins the name of every stream of the run
	natsPID int    // the JetStream server's process, 0 when unknown
	natsHow string // how natsPID was found, or why not
	alone   *target
	one     *target   // the node of a cluster of one
	three   []*target // the nodes of a cluster of three; the first takes the ingest
	started []*target // every server started, to stop
}

// The groups' names in the report.
const (
	groupAlone = "alone"
	groupOne   = "1 node"
	groupThree = "3 nodes"
)

// cluster runs the cluster scenario.
func (r *runner) cluster(ctx context.Context, rep *Report) (err error) {
	o := r.opt
	if err := natsCheck(ctx, o.NATSURL); err != nil {
		return err
	}
	cr := &clusterRun{r: r, prefix: runPrefix()}
	cr.natsPID, cr.natsHow = findNATS(o)
	rep.StreamPrefix = cr.prefix
	rep.Mode = fmt.Sprintf("subprocess: five streamux processes (streamux-bench server; CPU from /proc/PID), alone and "+
		"as clusters of one and three nodes on the JetStream server at %s (storage %s, replicas %d); nats-server CPU: %s",
		redactURL(o.NATSURL), o.ClusterStorage, o.ClusterReplicas, cr.natsHow)
	defer func() {
		// The servers first: a node still running would make its log again.
		serr := cr.stopAll()
		n, derr := deleteStreams(o.NATSURL, cr.prefix)
		switch {
		case err != nil:
		case derr != nil:
			err = fmt.Errorf("cluster: delete this run's streams (%s…): %w", cr.prefix, derr)
		case serr != nil && ctx.Err() == nil:
			err = serr
		default:
			rep.Notes = append(rep.Notes, fmt.Sprintf("the run's %d JetStream streams (%s…) were deleted at its end", n, cr.prefix))
		}
	}()
	if err := cr.startAll(ctx); err != nil {
		return err
	}
	rep.sections = []section{
		{"hop", fmt.Sprintf("hop: %s msg/s into the http source, one client reading everything (node 3 of three reads the log for none)", num(o.Rate)), hopColumns},
		{"append", fmt.Sprintf("append: requests of %d NDJSON lines of %d bytes, posters at once, until the rate stops growing", ingestLines, o.Size), appendColumns},
		{"fanout", fmt.Sprintf("fanout: %s msg/s, %s clients, client i reading key == \"k<i mod %d>\" (on three nodes: on node i mod 3)",
			num(o.Rate), commas(int64(o.Clients)), o.Keys), fanoutColumns},
	}
	if err := cr.hop(ctx, rep); err != nil {
		return err
	}
	if err := cr.appendMax(ctx, rep); err != nil {
		return err
	}
	if err := cr.fanout(ctx, rep); err != nil {
		return err
	}
	rep.Notes = append(rep.Notes,
		"the groups ran side by side, each with its own clients, and took turns receiving messages in alternating slices; the publisher posts to the group's first node",
		"latency is end to end: from when a message was due to be published to when a client read it; clustered, it includes the append to the log and the node's read of it",
		"CPU µs/msg is a process's CPU over the measured slices per message published to its group; the nats-server row's includes whatever else used that server meanwhile",
		"append: each poster sends its next request when the last is answered; clustered, an answer means the log stored the lines; routed is what the node's router took meanwhile, read back from the log when clustered, and lag what the log held that the node had not read at the step's end; catch-up is how fast the node routed what was left once the posters stopped (at least 1,000 messages); the node's CPU includes its read",
	)
	return nil
}

// runPrefix is a stream prefix that no other run uses.
func runPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "SXB" + hex.EncodeToString(b[:]) + "_"
}

// startAll starts the five servers and waits until each cluster node has its log.
func (cr *clusterRun) startAll(ctx context.Context) error {
	o := cr.r.opt
	base := cr.r.serverConfig()
	start := func(name string, cl *clusterBlock) (*target, error) {
		sc := base
		// Each its own data directory: a node keeps there the highest id it routed.
		sc.name, sc.cluster, sc.dataDir = name, cl, filepath.Join(cr.r.dir, name+"-data")
		cr.r.prog.show("[cluster] starting %s", name)
		t, err := cr.r.start(ctx, kindStreamux, sc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cr.started = append(cr.started, t)
		if err := waitHealthy(ctx, t); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return t, nil
	}
	block := func(sub, node string) *clusterBlock {
		return &clusterBlock{natsURL: o.NATSURL, prefix: cr.prefix + sub, node: node, storage: o.ClusterStorage, replicas: o.ClusterReplicas}
	}
	var err error
	if cr.alone, err = start("alone", nil); err != nil {
		return err
	}
	if cr.one, err = start("one-1", block("1_", "bench-one-1")); err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		t, err := start(fmt.Sprintf("three-%d", i), block("3_", fmt.Sprintf("bench-three-%d", i)))
		if err != nil {
			return err
		}
		cr.three = append(cr.three, t)
	}
	for _, t := range append([]*target{cr.one}, cr.three...) {
		if err := waitLog(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// stopAll stops every server started, and returns the first failure.
func (cr *clusterRun) stopAll() error {
	var first error
	for i := len(cr.started) - 1; i >= 0; i-- {
		if err := cr.started[i].stop(); err != nil && first == nil {
			first = err
		}
	}
	cr.started = nil
	return first
}

// sourceState is what the scenario reads of its source in GET /v1/sources.
type sourceState struct {
	Name     string `json:"name"`
	Counters struct {
		Received uint64 `json:"received"`
	} `json:"counters"`
	LogLast  *uint64 `json:"log_last_seq"`
	LogError string  `json:"log_error"`
	Lag      uint64  `json:"lag"`
}

// state reads t's source.
func state(ctx context.Context, t *target) (sourceState, error) {
	var list []sourceState
	if err := t.get(ctx, t.base+"/v1/sources", &list); err != nil {
		return sourceState{}, err
	}
	for _, s := range list {
		if s.Name == t.source {
			return s, nil
		}
	}
	return sourceState{}, fmt.Errorf("the server has no source %q", t.source)
}

// waitLog waits until node t knows its source's log.
func waitLog(ctx context.Context, t *target) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := state(ctx, t)
		if err == nil && s.LogLast != nil && s.LogError == "" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("log: %q", s.LogError)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster: the node at %s has no log for its source: %v\n%s", t.base, err, t.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReceived waits until t's source has routed n messages since it started.
func waitReceived(ctx context.Context, t *target, n uint64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := state(ctx, t)
		if err != nil {
			return err
		}
		if s.Counters.Received >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster: the server at %s routed %d of %d messages in time", t.base, s.Counters.Received, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cgroup is servers measured together: streamux alone, or the nodes of one cluster, with the
// publisher that feeds the first of them.
type cgroup struct {
	name    string
	nodes   []*cnode
	pubRec  *recorder // the publisher's: what it published, the deliveries it expects
	acc     *phase    // pubRec's phase over the measured slices
	pub     *publisher
	stopPub func() error

	// over the measured slices
	elapsed, self, nats time.Duration
}

// cnode is one server of a group, with its clients.
type cnode struct {
	name    string
	t       *target
	rec     *recorder // its clients record here
	clients []*client
	acc     *phase
	cpu     time.Duration
}

func newGroup(name string, ts []*target, names []string) *cgroup {
	g := &cgroup{name: name, pubRec: newRecorder(), stopPub: func() error { return nil }}
	g.pubRec.cur.Store(scratch)
	for i, t := range ts {
		n := &cnode{name: names[i], t: t, rec: newRecorder()}
		n.rec.cur.Store(scratch)
		g.nodes = append(g.nodes, n)
	}
	return g
}

// dial connects a client per spec to node n.
func (cr *clusterRun) dial(ctx context.Context, section string, g *cgroup, n *cnode, specs []clientSpec) error {
	if len(specs) == 0 {
		return nil
	}
	cr.r.prog.show("[cluster %s] connecting %d clients to %s, %s", section, len(specs), g.name, n.name)
	cs, err := dialAll(ctx, n.t.base, n.t.source, specs, cr.r.opt.Parallel, n.rec, cr.r.rs)
	n.clients = cs
	return err
}

// publish starts g's publisher, paused, to its first node.
func (cr *clusterRun) publish(ctx context.Context, g *cgroup, fanTo []uint64) {
	g.pub, g.stopPub = cr.r.runPublisher(ctx, cr.r.httpSinkTo(g.nodes[0].t), g.pubRec, fanTo, 0)
}

// close stops g's publisher and closes its clients; it returns the publisher's error.
func (g *cgroup) close() error {
	err := g.stopPub()
	for _, n := range g.nodes {
		closeAll(n.clients)
		n.clients = nil
	}
	return err
}

// measuring points every recorder of g to its measured phase, or to scratch.
func (g *cgroup) measuring(on bool) {
	if !on {
		g.pubRec.cur.Store(scratch)
		for _, n := range g.nodes {
			n.rec.cur.Store(scratch)
		}
		return
	}
	g.pubRec.cur.Store(g.acc)
	for _, n := range g.nodes {
		n.rec.cur.Store(n.acc)
	}
}

func (g *cgroup) delivered() (d uint64) {
	for _, n := range g.nodes {
		d += n.rec.delivered.Load()
	}
	return d
}

// drain waits, at most max, until g's clients have what was published for them, or nothing
// more arrives for a second.
func (g *cgroup) drain(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	last, changed := g.delivered(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		d := g.delivered()
		if d >= g.pubRec.expected.Load() {
			return
		}
		if d != last {
			last, changed = d, time.Now()
		} else if time.Since(changed) > time.Second {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// natsCPU is the JetStream server's CPU time so far, 0 when unknown.
func (cr *clusterRun) natsCPU() time.Duration {
	if cr.natsPID <= 0 {
		return 0
	}
	cpu, _, _ := procStat(cr.natsPID)
	return cpu
}

// measure publishes to every group at -rate for -duration, in fixedRounds alternating slices.
func (cr *clusterRun) measure(ctx context.Context, section string, gs []*cgroup) error {
	o := cr.r.opt
	d := max(o.Duration/fixedRounds, 500*time.Millisecond)
	for _, g := range gs {
		g.acc = newPhase()
		for _, n := range g.nodes {
			n.acc = newPhase()
		}
	}
	for round := range fixedRounds {
		for _, g := range gs {
			settle := 500 * time.Millisecond
			if round == 0 {
				settle = max(o.Warmup, settle)
			}
			if err := cr.slice(ctx, section, g, settle, d, fmt.Sprintf("%d/%d", round+1, fixedRounds)); err != nil {
				return err
			}
		}
	}
	return nil
}

// slice publishes to g at -rate: unmeasured for settle, then measured for d. Then it pauses
// the publisher and waits for what is in flight.
func (cr *clusterRun) slice(ctx context.Context, section string, g *cgroup, settle, d time.Duration, label string) error {
	g.pub.setRate(cr.r.opt.Rate)
	defer func() {
		g.measuring(false)
		g.pub.setRate(0)
		g.drain(ctx, 2*time.Second)
	}()
	if err := cr.r.sleep(ctx, settle, nil); err != nil {
		return err
	}
	cpu0 := make([]time.Duration, len(g.nodes))
	for i, n := range g.nodes {
		cpu0[i], _, _ = procStat(n.t.pid)
	}
	nats0 := cr.natsCPU()
	self0, _, _ := procStat(0)
	g.measuring(true)
	start := time.Now()
	err := cr.r.sleep(ctx, d, func(el time.Duration) {
		secs := (g.elapsed + time.Since(start)).Seconds()
		lat := g.nodes[0].acc.lat.summary()
		cpu, _, _ := procStat(g.nodes[0].t.pid)
		cr.r.prog.show("[cluster %s %s %s] %v/%v  published %s/s  delivered %s/s  p99 %s ms  %s CPU %.0f%%",
			section, g.name, label, el.Round(time.Second), d, num(float64(g.acc.published.Load())/secs),
			num(float64(sumDelivered(g))/secs), ms(round2(lat.p99)),
			g.nodes[0].name, 100*(cpu-cpu0[0]).Seconds()/time.Since(start).Seconds())
	})
	g.measuring(false)
	g.elapsed += time.Since(start)
	for i, n := range g.nodes {
		cpu, _, _ := procStat(n.t.pid)
		n.cpu += cpu - cpu0[i]
	}
	g.nats += cr.natsCPU() - nats0
	self1, _, _ := procStat(0)
	g.self += self1 - self0
	return err
}

// sumDelivered is what g's clients delivered in the measured slices.
func sumDelivered(g *cgroup) (d uint64) {
	for _, n := range g.nodes {
		d += n.acc.delivered.Load()
	}
	return d
}

// finish stops g's publisher, waits for the last deliveries and returns its rows: one per
// node, "all nodes" for a group of several when all is set, and the JetStream server's.
func (cr *clusterRun) finish(ctx context.Context, section string, g *cgroup, all bool) ([]Result, error) {
	if err := g.stopPub(); err != nil {
		return nil, fmt.Errorf("%s publisher: %w", g.name, err)
	}
	g.drain(ctx, 5*time.Second)
	o := cr.r.opt
	secs := g.elapsed.Seconds()
	published := float64(g.acc.published.Load())
	row := func(server string, clients int, ph *phase, cpu time.Duration) Result {
		res := summarize(server, ph, cpu, g.elapsed)
		res.Section, res.Group, res.Clients, res.Rate = section, g.name, clients, o.Rate
		res.Published = published / secs
		if published > 0 {
			res.CPUPerMessageUs = cpu.Seconds() * 1e6 / published
		}
		return res
	}
	var rows []Result
	allPh, allCPU, allClients := newPhase(), time.Duration(0), 0
	for _, n := range g.nodes {
		rows = append(rows, row(n.name, len(n.clients), n.acc, n.cpu))
		allPh.add(n.acc)
		allCPU += n.cpu
		allClients += len(n.clients)
	}
	if all && len(g.nodes) > 1 {
		rows = append([]Result{row("all nodes", allClients, allPh, allCPU)}, rows...)
	}
	// The group's first row carries what the group shares: the bench's own CPU, drops and
	// disconnections.
	first := &rows[0]
	first.head = true
	first.setClientCPU(g.self, time.Duration(secs*float64(time.Second)))
	first.Dropped = max(int64(g.pubRec.expected.Load())-int64(g.delivered()), 0)
	for _, n := range g.nodes {
		first.Disconnected += n.rec.closed.Load()
	}
	if cr.natsPID > 0 {
		res := Result{Section: section, Group: g.name, Server: "nats-server", Rate: o.Rate, Published: published / secs,
			CPUSeconds: g.nats.Seconds(), CPUPercent: 100 * g.nats.Seconds() / secs}
		if published > 0 {
			res.CPUPerMessageUs = g.nats.Seconds() * 1e6 / published
		}
		if d := float64(sumDelivered(g)); d > 0 {
			res.CPUPerDeliveryUs = g.nats.Seconds() * 1e6 / d
		}
		rows = append(rows, res)
	}
	return rows, nil
}

// add adds what o recorded to ph.
func (ph *phase) add(o *phase) {
	ph.delivered.Add(o.delivered.Load())
	ph.gaps.Add(o.gaps.Load())
	ph.published.Add(o.published.Load())
	ph.expected.Add(o.expected.Load())
	ph.lat.add(&o.lat)
}

// add adds o's counts to h.
func (h *hist) add(o *hist) {
	for s := range o.shards {
		for i := range o.shards[s].counts {
			if c := o.shards[s].counts[i].Load(); c > 0 {
				h.shards[s].counts[i].Add(c)
			}
		}
	}
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// closeGroups closes every group, for a stage that failed.
func closeGroups(gs []*cgroup) {
	for _, g := range gs {
		_ = g.close()
	}
}

// hop measures the latency one log hop adds, and every process's CPU per message, at -rate
// with one client per node (node 3 of three has none: it only reads).
func (cr *clusterRun) hop(ctx context.Context, rep *Report) error {
	o := cr.r.opt
	alone := newGroup(groupAlone, []*target{cr.alone}, []string{"streamux"})
	three := newGroup(groupThree, cr.three, []string{"node 1 (ingest)", "node 2", "node 3"})
	gs := []*cgroup{alone, three}
	defer closeGroups(gs)
	one := []clientSpec{{policy: o.Policy, batch: o.Batch}} // reads everything
	for _, d := range []struct {
		g *cgroup
		n *cnode
	}{{alone, alone.nodes[0]}, {three, three.nodes[0]}, {three, three.nodes[1]}} {
		if err := cr.dial(ctx, "hop", d.g, d.n, one); err != nil {
			return err
		}
	}
	for _, g := range gs {
		fanTo := make([]uint64, o.Keys)
		for k := range fanTo {
			for _, n := range g.nodes {
				fanTo[k] += uint64(len(n.clients))
			}
		}
		cr.publish(ctx, g, fanTo)
	}
	if err := cr.measure(ctx, "hop", gs); err != nil {
		return err
	}
	var rows []Result
	for _, g := range gs {
		rs, err := cr.finish(ctx, "hop", g, false)
		if err != nil {
			return err
		}
		rows = append(rows, rs...)
	}
	rep.Results = append(rep.Results, rows...)
	find := func(group, server string) Result {
		for _, r := range rows {
			if r.Group == group && r.Server == server {
				return r
			}
		}
		return Result{}
	}
	a, n1, n2, n3 := find(groupAlone, "streamux"), find(groupThree, "node 1 (ingest)"), find(groupThree, "node 2"), find(groupThree, "node 3")
	rep.Summary = append(rep.Summary,
		fmt.Sprintf("hop: one log hop adds %+.2f ms at p50 and %+.2f ms at p99 to a client of the ingesting node (alone %s / %s ms, clustered %s / %s), %+.2f / %+.2f ms to a client of another node (%s / %s)",
			n1.P50ms-a.P50ms, n1.P99ms-a.P99ms, ms(a.P50ms), ms(a.P99ms), ms(n1.P50ms), ms(n1.P99ms),
			n2.P50ms-a.P50ms, n2.P99ms-a.P99ms, ms(n2.P50ms), ms(n2.P99ms)),
		fmt.Sprintf("hop: CPU µs per message at %s msg/s: alone %s (ingest, routing, one client); clustered, the ingesting node %s, a node reading for one client %s, for none %s",
			num(o.Rate), num(a.CPUPerMessageUs), num(n1.CPUPerMessageUs), num(n2.CPUPerMessageUs), num(n3.CPUPerMessageUs)),
		fmt.Sprintf("hop: append ≈ the ingesting node less a node reading for one client: %s µs per message; read ≈ a node reading for none: %s µs per message and node",
			num(n1.CPUPerMessageUs-n2.CPUPerMessageUs), num(n3.CPUPerMessageUs)),
	)
	if cr.natsPID > 0 {
		na, n := find(groupAlone, "nats-server"), find(groupThree, "nats-server")
		rep.Summary = append(rep.Summary, fmt.Sprintf("hop: nats-server %s µs per message appended and read by three nodes (%s while alone ran, which used none of it)",
			num(n.CPUPerMessageUs), num(na.CPUPerMessageUs)))
	}
	for _, g := range gs {
		if err := g.close(); err != nil {
			return err
		}
	}
	return nil
}

// appendMax finds the most messages per second a source takes, alone and in a cluster of one
// node: requests of ingestLines NDJSON lines, 1, 2, 4, … at once (at most -max-posters), each
// step -ramp-step long, until a step does not beat the best by 5%, twice in a row.
func (cr *clusterRun) appendMax(ctx context.Context, rep *Report) error {
	o := cr.r.opt
	body := ingestBodies(ingestLines, o.Size, "ndjson")[0]
	type contender struct {
		group, server string
		t             *target
		best          float64
		bestAt        int
		flat          int
		alive         bool
	}
	cs := []*contender{{group: groupAlone, server: "streamux", t: cr.alone, alive: true}, {group: groupOne, server: "node 1", t: cr.one, alive: true}}
	for p, last := 1, false; !last; p = min(2*p, o.MaxPosters) {
		last = p >= o.MaxPosters
		any := false
		for _, c := range cs {
			if !c.alive {
				continue
			}
			any = true
			res, err := cr.appendStep(ctx, c.group, c.server, c.t, body, p)
			if err != nil {
				return err
			}
			if res.MsgsPerSec > 1.05*c.best {
				c.best, c.bestAt, c.flat = res.MsgsPerSec, p, 0
			} else if c.flat++; c.flat >= 2 {
				c.alive = false
			}
			rep.Results = append(rep.Results, res)
		}
		if !any {
			break
		}
	}
	line := "append: the most taken:"
	for i, c := range cs {
		if i > 0 {
			line += ";"
		}
		line += fmt.Sprintf(" %s %s msg/s (%s)", c.group, num(c.best), plural(c.bestAt, "poster"))
	}
	if cs[0].best > 0 {
		line += fmt.Sprintf("; clustered, a source appends %.1f%% of what it takes alone", 100*cs[1].best/cs[0].best)
	}
	rep.Summary = append(rep.Summary, line)
	return nil
}

// appendStep posts body to t from posters at once: unmeasured for a quarter of -ramp-step (at
// least 500ms), then measured for -ramp-step. It waits until t has routed all it accepted.
func (cr *clusterRun) appendStep(ctx context.Context, group, server string, t *target, body []byte, posters int) (Result, error) {
	o := cr.r.opt
	st0, err := state(ctx, t)
	if err != nil {
		return Result{}, err
	}
	u := t.base + "/v1/sources/" + t.source + "/messages"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: posters, MaxConnsPerHost: posters}, Timeout: 2 * time.Minute}
	defer hc.CloseIdleConnections()
	var (
		accepted atomic.Uint64
		stop     atomic.Bool
		wg       sync.WaitGroup
		errs     = make(chan error, posters)
	)
	for range posters {
		wg.Go(func() { // waited for below
			for !stop.Load() && ctx.Err() == nil {
				n, err := postAccepted(ctx, hc, u, body)
				accepted.Add(uint64(n))
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
			}
		})
	}
	halt := func() error {
		stop.Store(true)
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
	label := fmt.Sprintf("[cluster append %s ×%d]", group, posters)
	cr.r.prog.show("%s settling", label)
	if err := cr.r.sleep(ctx, max(o.RampStep/4, 500*time.Millisecond), nil); err != nil {
		_ = halt()
		return Result{}, err
	}
	a0 := accepted.Load()
	cpu0, _, _ := procStat(t.pid)
	nats0 := cr.natsCPU()
	r0, err := state(ctx, t)
	if err != nil {
		_ = halt()
		return Result{}, err
	}
	start := time.Now()
	err = cr.r.sleep(ctx, o.RampStep, func(el time.Duration) {
		cr.r.prog.show("%s %v/%v  accepted %s msg/s", label, el.Round(time.Second), o.RampStep,
			num(float64(accepted.Load()-a0)/time.Since(start).Seconds()))
	})
	a1 := accepted.Load()
	el := time.Since(start)
	cpu1, _, _ := procStat(t.pid)
	nats1 := cr.natsCPU()
	r1, serr := state(ctx, t)
	if herr := halt(); err == nil {
		err = herr
	}
	if err == nil {
		err = serr
	}
	if err != nil {
		return Result{}, err
	}
	cr.r.prog.show("%s waiting for the node to route what it took", label)
	behind, err := state(ctx, t)
	if err != nil {
		return Result{}, err
	}
	all := st0.Counters.Received + accepted.Load()
	caught := time.Now()
	if err := waitReceived(ctx, t, all); err != nil {
		return Result{}, err
	}
	n := float64(a1 - a0)
	secs := el.Seconds()
	res := Result{
		Section: "append", Group: group, Server: server, Posters: posters, MsgsPerSec: n / secs,
		RoutedPerSec: float64(r1.Counters.Received-r0.Counters.Received) / secs, Lag: r1.Lag,
		CPUSeconds: (cpu1 - cpu0).Seconds(), CPUPercent: 100 * (cpu1 - cpu0).Seconds() / secs,
	}
	if left := all - min(behind.Counters.Received, all); left >= ingestLines {
		res.CatchUpPerSec = float64(left) / time.Since(caught).Seconds()
	}
	if n > 0 {
		res.CPUPerMessageUs = (cpu1 - cpu0).Seconds() * 1e6 / n
	}
	if cr.natsPID > 0 {
		res.NATSCPUSeconds, res.NATSCPUPercent = (nats1 - nats0).Seconds(), 100*(nats1-nats0).Seconds()/secs
		if n > 0 {
			res.NATSCPUPerMessageUs = (nats1 - nats0).Seconds() * 1e6 / n
		}
	}
	return res, nil
}

// postAccepted posts body as NDJSON to url and returns how many lines the server accepted
// (an error's answer may say how many it took before failing).
func postAccepted(ctx context.Context, c *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	var ans struct {
		Accepted int `json:"accepted"`
	}
	jerr := json.Unmarshal(b, &ans)
	if resp.StatusCode != http.StatusOK {
		if len(b) > 512 {
			b = b[:512]
		}
		return ans.Accepted, fmt.Errorf("ingest: %s %s", resp.Status, b)
	}
	if jerr != nil {
		return 0, fmt.Errorf("ingest: the answer %.200q: %w", b, jerr)
	}
	return ans.Accepted, nil
}

// fanout measures -clients clients at -rate: all on alone, all on the node of a cluster of
// one, and spread over the three nodes of a cluster of three.
func (cr *clusterRun) fanout(ctx context.Context, rep *Report) error {
	o := cr.r.opt
	alone := newGroup(groupAlone, []*target{cr.alone}, []string{"streamux"})
	one := newGroup(groupOne, []*target{cr.one}, []string{"node 1"})
	three := newGroup(groupThree, cr.three, []string{"node 1 (ingest)", "node 2", "node 3"})
	gs := []*cgroup{alone, one, three}
	defer closeGroups(gs)
	fanTo := make([]uint64, o.Keys)
	specs := make([]clientSpec, o.Clients)
	spread := make([][]clientSpec, len(three.nodes))
	for i := range specs {
		specs[i] = clientSpec{where: fmt.Sprintf(`key == "k%d"`, i%o.Keys), policy: o.Policy, batch: o.Batch}
		fanTo[i%o.Keys]++
		spread[i%len(spread)] = append(spread[i%len(spread)], specs[i])
	}
	if err := cr.dial(ctx, "fanout", alone, alone.nodes[0], specs); err != nil {
		return err
	}
	if err := cr.dial(ctx, "fanout", one, one.nodes[0], specs); err != nil {
		return err
	}
	for i, n := range three.nodes {
		if err := cr.dial(ctx, "fanout", three, n, spread[i]); err != nil {
			return err
		}
	}
	for _, g := range gs {
		cr.publish(ctx, g, fanTo)
	}
	if err := cr.measure(ctx, "fanout", gs); err != nil {
		return err
	}
	for _, g := range gs {
		rows, err := cr.finish(ctx, "fanout", g, true)
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, rows...)
		r := rows[0]
		line := fmt.Sprintf("fanout: %-7s %s deliveries/s, p50 %s ms, p99 %s ms, streamux %s µs of CPU per delivery",
			g.name, num(r.Delivered), ms(r.P50ms), ms(r.P99ms), num(r.CPUPerDeliveryUs))
		if nr := rows[len(rows)-1]; nr.Server == "nats-server" {
			line += fmt.Sprintf(", nats-server %s more", num(nr.CPUPerDeliveryUs))
		}
		rep.Summary = append(rep.Summary, line)
	}
	for _, g := range gs {
		if err := g.close(); err != nil {
			return err
		}
	}
	return nil
}

// natsCheck fails, saying why, unless a NATS server with JetStream answers at urls.
func natsCheck(ctx context.Context, urls string) error {
	nc, err := natsgo.Connect(urls, natsgo.Name("streamux-bench"), natsgo.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("cluster: no NATS server at %s (run nats-server -js there, or give -nats-url): %w", redactURL(urls), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("cluster: the NATS server at %s offers no JetStream (nats-server -js): %w", redactURL(urls), err)
	}
	return nil
}

// deleteStreams deletes every stream whose name begins with prefix (the run's logs) or with
// "KV_" and prefix (a lease bucket's), and returns how many it deleted.
func deleteStreams(urls, prefix string) (int, error) {
	nc, err := natsgo.Connect(urls, natsgo.Name("streamux-bench"), natsgo.Timeout(5*time.Second))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var del []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) || strings.HasPrefix(n, "KV_"+prefix) {
			del = append(del, n)
		}
	}
	if err := names.Err(); err != nil {
		return 0, err
	}
	for _, n := range del {
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, fmt.Errorf("delete stream %s: %w", n, err)
		}
	}
	return len(del), nil
}

// findNATS finds the JetStream server's process: -nats-pid, or, when every URL is on this
// machine, the one process named nats-server. It says how, or why it found none.
func findNATS(o Options) (int, string) {
	if o.NATSPID > 0 {
		return o.NATSPID, fmt.Sprintf("/proc/%d (-nats-pid)", o.NATSPID)
	}
	for raw := range strings.SplitSeq(o.NATSURL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			return 0, "not measured (give -nats-pid)"
		}
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return 0, "not measured: the server is not on this machine (give -nats-pid if it is)"
		}
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil || strings.TrimSpace(string(b)) != "nats-server" {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		return 0, fmt.Sprintf("not measured: %d local processes named nats-server (give -nats-pid)", len(pids))
	}
	return pids[0], fmt.Sprintf("/proc/%d, the one local process named nats-server", pids[0])
}

// redactURL hides the user information of each of the comma-separated URLs.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			parts[i] = "?"
			continue
		}
		if u.User != nil {
			u.User = url.User("***")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// The columns of the cluster scenario's tables.
var (
	colGroup   = column{"group", func(r Result) string { return r.Group }}
	colProcess = column{"process", func(r Result) string { return r.Server }}
	colCClient = column{"clients", func(r Result) string {
		if r.Server == "nats-server" {
			return ""
		}
		return commas(int64(r.Clients))
	}}
	colCDelivered = column{"delivered/s", dashed(func(r Result) float64 { return r.Delivered })}
	colCP50       = column{"p50 ms", dashed(func(r Result) float64 { return r.P50ms })}
	colCP99       = column{"p99 ms", dashed(func(r Result) float64 { return r.P99ms })}
	colCMax       = column{"max ms", dashed(func(r Result) float64 { return r.MaxMs })}
	colCPUPerMsg  = column{"CPU µs/msg", func(r Result) string { return num(r.CPUPerMessageUs) }}
	colCPUPerDel  = column{"CPU µs/deliv", dashed(func(r Result) float64 { return r.CPUPerDeliveryUs })}
	colCDropped   = column{"dropped", func(r Result) string {
		if !r.head {
			return ""
		}
		return commas(r.Dropped)
	}}
	colCDisc = column{"disconn", func(r Result) string {
		if !r.head {
			return ""
		}
		return commas(r.Disconnected)
	}}
	colPosters  = column{"posters", func(r Result) string { return strconv.Itoa(r.Posters) }}
	colAccepted = column{"accepted msg/s", func(r Result) string { return num(r.MsgsPerSec) }}
	colRouted   = column{"routed msg/s", func(r Result) string { return num(r.RoutedPerSec) }}
	colLag      = column{"lag", func(r Result) string { return commas(int64(r.Lag)) }}
	colCatchUp  = column{"catch-up msg/s", dashed(func(r Result) float64 { return r.CatchUpPerSec })}
	colNodeCPU  = column{"node CPU", func(r Result) string { return fmt.Sprintf("%.1fs %.0f%%", r.CPUSeconds, r.CPUPercent) }}
	colNATSCPU  = column{"nats CPU", func(r Result) string {
		if r.NATSCPUSeconds == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fs %.0f%%", r.NATSCPUSeconds, r.NATSCPUPercent)
	}}
	colNATSPerMsg = column{"nats µs/msg", dashed(func(r Result) float64 { return r.NATSCPUPerMessageUs })}

	hopColumns = []column{colGroup, colProcess, colCClient, colPublished, colCDelivered, colCP50, colCP99, colCMax,
		colCPU, colCPUPerMsg, colClientCPU, colCDropped}
	appendColumns = []column{colGroup, colProcess, colPosters, colAccepted, colRouted, colLag, colCatchUp, colNodeCPU, colCPUPerMsg, colNATSCPU, colNATSPerMsg}
	fanoutColumns = []column{colGroup, colProcess, colCClient, colPublished, colCDelivered, colCP50, colCP99, colCMax,
		colCPU, colCPUPerDel, colCPUPerMsg, colClientCPU, colClientPer, colCDropped, colCDisc}
)

// dashed shows a figure, or "-" where it is zero (a process with no clients has no latency).
func dashed(f func(Result) float64) func(Result) string {
	return func(r Result) string {
		if v := f(r); v != 0 {
			return num(v)
		}
		return "-"
	}
}

// plural is n and word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
