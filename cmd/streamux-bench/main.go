// Command streamux-bench loads streamux and reports what it delivers, how fast, and at what cost:
// the load tool of DESIGN.md's "How well" and BENCHMARKS.md. It is a command of its own so that
// the server binary carries the server only, not the load generator, nor net/http/pprof.
//
//	streamux-bench SCENARIO [flags]   run a scenario (streamux-bench -h lists them and every flag)
//	streamux-bench server [flags]     the server side of a run, which the bench starts itself
//
// The server under load runs as a subprocess of this binary (streamux-bench server), which runs
// streamux through internal/server exactly as the streamux command does, so that its CPU time
// and memory are its own; its debug port (pprof, a forced GC, runtime counters) is the bench's,
// not streamux's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/streamux/streamux/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "streamux-bench: %v\n", err)
		os.Exit(1)
	}
}

// errUsage is a command line that could not be understood; the flag package has said why.
var errUsage = errors.New("usage")

const benchUsage = `Usage: streamux-bench SCENARIO [flags]

Load streamux and report what it delivers, how fast, and at what cost (see BENCHMARKS.md).
By default the server runs as a subprocess of this binary (streamux-bench server), so that its
CPU time and memory are its own; a bare WebSocket loop, the ceiling, runs beside it with its
own clients, and the two take turns under the same load.

Scenarios (defaults in brackets):
  fanout     -clients [1000] WebSocket clients, client i reading key == "k<i mod -keys>" [100],
             -rate [4000] messages/s published, each to clients/keys clients
  broadcast  -clients [1000] clients that all read everything, at -rate [40] messages/s
  idle       -clients [1000] clients at rest: server RSS, heap and goroutines per connection
  match      -subs [1000,100000] subscriptions of "key ==" and of mixed predicates in one router,
             in process, no network: ns per routed message, -duration [2s] each
  ingest     RabbitMQ (-amqp-url) into streamux's amqp source, no clients, against bare
             amqp091-go consumers: -rounds [3] of -messages [50000] each; -ingest-via
             ndjson, envelope or stream POSTs them to an http source instead
  churn      -cycles [10000] clients connect and leave, -clients [50] at a time, while
             -rate [1000] messages/s flow: goroutines and heap before and after
  slow       -clients [100] fast clients reading everything at -rate [500] with -size [2048]
             bodies, alone for half of -duration, then with one client that never reads
  cluster    streamux alone against clusters of one and three nodes on the JetStream server at
             -nats-url, all on this machine: the latency and CPU of one log hop at -rate
             [4000] with one client per node; the most a source appends (requests of 1,000
             NDJSON lines, 1, 2, 4, … -max-posters [64] at once); fan-out to -clients [1000]
             over -keys [100], alone, on one node and spread over three; the run's streams
             are deleted at its end
  sink       a webhook sink to a receiver in the bench that acknowledges at once, a server for
             each of -sink-batches [1,100,1000] as batch.max: -messages [20000] posted to its
             http source (as fast as it takes them, or at -rate), timed until all are received;
             -sink-wait [0] is its batch.wait, -sink-memory keeps positions in memory

Flags:
`

// run is main without the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "server" {
		return bench.ServeChild(ctx, args[1:], stdout, stderr)
	}
	orig := args
	scenario := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		scenario, args = args[0], args[1:]
	}
	defaults := scenario
	if defaults == "" { // flags first: take the defaults of the scenario named after them
		defaults = "fanout"
		for _, a := range args {
			if slices.Contains(bench.Scenarios, a) {
				defaults = a
				break
			}
		}
	}
	o := bench.Defaults(defaults)
	fs := flag.NewFlagSet("streamux-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.Clients, "clients", o.Clients, "WebSocket clients (fanout, broadcast, idle); fast clients (slow); clients at once (churn)")
	fs.IntVar(&o.Keys, "keys", o.Keys, "distinct message keys; fanout client i reads k<i mod keys>")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "messages published per second; with -ramp, the first step's (default: a quarter of the scenario's)")
	fs.IntVar(&o.Size, "size", o.Size, "message body size in bytes")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long each server is measured (slow: both halves; match: each table)")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before the measurement starts, not measured")
	fs.StringVar(&o.URL, "url", o.URL, "measure the streamux running at this URL instead of starting one; it needs an http source named -source-name")
	fs.IntVar(&o.PID, "pid", o.PID, "with -url: the server's process id, to read its CPU and memory from /proc instead of its /metrics")
	fs.BoolVar(&o.InProcess, "inprocess", o.InProcess, "run the servers in this process (CPU and memory are then the whole process's, clients included)")
	fs.BoolVar(&o.Bare, "bare", o.Bare, "also measure the bare WebSocket loop (one frame per event, prepared frames) with the same clients and load")
	fs.BoolVar(&o.BareJoin, "bare-join", o.BareJoin, "also measure the bare loop that joins up to 64 events in one frame")
	fs.StringVar(&o.Source, "source", o.Source, "how messages reach streamux: http (NDJSON envelopes to the ingest endpoint), demo (the demo source at -rate) or amqp (RabbitMQ)")
	fs.StringVar(&o.SourceName, "source-name", o.SourceName, "the source's name")
	fs.StringVar(&o.AMQPURL, "amqp-url", o.AMQPURL, "RabbitMQ, for -source amqp and the ingest scenario")
	fs.StringVar(&o.Policy, "policy", o.Policy, "the clients' slow-consumer policy: disconnect or drop")
	fs.IntVar(&o.QueueEvents, "queue-events", o.QueueEvents, "streamux's limits.queue_events (0: its default)")
	fs.IntVar(&o.MaxBatch, "max-batch", o.MaxBatch, "streamux's stream.max_batch (0: its default)")
	fs.DurationVar(&o.WriteDelay, "write-delay", o.WriteDelay, "streamux's stream.write_delay: each WebSocket connection is written at most once per delay (0: at once)")
	fs.BoolVar(&o.IngestStream, "ingest-stream", false, "the publisher writes into one streaming ingest request (?stream=true) that stays open, instead of a request per batch")
	fs.DurationVar(&o.PublishEvery, "publish-every", o.PublishEvery, "how often the publisher sends what has come due: one request to the http source, one burst to RabbitMQ")
	fs.BoolVar(&o.Batch, "batch", o.Batch, "the clients ask streamux for batch frames (batch=true: a write's events in one frame, one per line); compare with -bare-join")
	fs.BoolVar(&o.Ramp, "ramp", o.Ramp, "fanout, broadcast: raise the rate each -ramp-step by -ramp-factor until p99 passes -p99 (twice at one rate); report the highest rate that held")
	fs.DurationVar(&o.P99, "p99", o.P99, "the p99 latency bound of -ramp")
	fs.DurationVar(&o.RampStep, "ramp-step", o.RampStep, "how long each -ramp step is measured (cluster: each step of its append stage)")
	fs.Float64Var(&o.RampFactor, "ramp-factor", o.RampFactor, "the rate's growth from one -ramp step to the next")
	fs.Float64Var(&o.MaxRate, "max-rate", o.MaxRate, "the highest rate -ramp tries (0: no limit but 40 steps)")
	subs := intList(o.Subs)
	fs.Var(&subs, "subs", "match: the subscription counts, comma-separated")
	fs.IntVar(&o.MatchKeys, "match-keys", o.MatchKeys, "match: the distinct keys of its messages and predicates")
	fs.IntVar(&o.Cycles, "cycles", o.Cycles, "churn: how many clients connect and leave")
	fs.IntVar(&o.Messages, "messages", o.Messages, "ingest: messages per round and consumer; sink: messages per batch.max")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "ingest: rounds, alternating between the consumers")
	fs.StringVar(&o.IngestVia, "ingest-via", o.IngestVia, "ingest: amqp (RabbitMQ into the amqp source, against bare consumers), amqp-stream, amqp-quorum, jetstream, redis-streams or mqtt (each source against a bare consumer of its library), or POSTs to the http source: ndjson (plain lines), envelope or stream")
	fs.IntVar(&o.Parallel, "parallel", o.Parallel, "clients connecting at once")
	sinkBatches := intList(o.SinkBatches)
	fs.Var(&sinkBatches, "sink-batches", "sink: the batch.max values, comma-separated, a server each")
	fs.DurationVar(&o.SinkWait, "sink-wait", o.SinkWait, "sink: the sink's batch.wait")
	fs.BoolVar(&o.SinkMemory, "sink-memory", o.SinkMemory, "sink: data_dir: memory, positions not saved to disk after each batch")
	fs.StringVar(&o.NATSURL, "nats-url", o.NATSURL, "cluster: the NATS server with JetStream that the nodes share")
	fs.IntVar(&o.NATSPID, "nats-pid", o.NATSPID, "cluster: the NATS server's process id, to read its CPU from /proc (0: the one local process named nats-server, if any)")
	fs.StringVar(&o.ClusterStorage, "cluster-storage", o.ClusterStorage, "cluster: the logs' storage, file or memory")
	fs.IntVar(&o.ClusterReplicas, "cluster-replicas", o.ClusterReplicas, "cluster: the logs' replicas, 1 or 3 (3 needs a cluster of NATS servers)")
	fs.IntVar(&o.MaxPosters, "max-posters", o.MaxPosters, "cluster: the most ingest requests in flight at once in the append stage")
	fs.DurationVar(&o.ClientPing, "client-ping", o.ClientPing, "how often each client pings the server, as many client libraries do (0: never; streamux then cuts a listening client after 40s of steady traffic)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", o.CPUProfile, "write streamux's CPU profile over the measurement to this file (the bare loop's to FILE.bare)")
	fs.StringVar(&o.HeapProfile, "heapprofile", o.HeapProfile, "churn: write the server's heap profiles before and after to FILE.before and FILE.after; idle: with the clients connected, to FILE.streamux and FILE.bare")
	fs.BoolVar(&o.JSON, "json", o.JSON, "print the report as JSON")
	fs.BoolVar(&o.Quiet, "quiet", o.Quiet, "no progress line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if scenario == "" && fs.NArg() > 0 {
		scenario = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return errUsage
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "streamux-bench: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if scenario == "" {
		fmt.Fprintf(stderr, "streamux-bench: which scenario? one of %s\n\n", strings.Join(bench.Scenarios, ", "))
		fs.Usage()
		return errUsage
	}
	if !slices.Contains(bench.Scenarios, scenario) {
		fmt.Fprintf(stderr, "streamux-bench: unknown scenario %q (one of %s)\n", scenario, strings.Join(bench.Scenarios, ", "))
		return errUsage
	}
	rateSet := false
	fs.Visit(func(f *flag.Flag) { rateSet = rateSet || f.Name == "rate" })
	if o.Ramp && !rateSet {
		o.Rate /= 4 // start the ramp well below the fixed run's rate
	}
	o.Subs = subs
	o.SinkBatches = sinkBatches
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find this binary to run the server: %w", err)
	}
	o.Child = []string{exe, "server"}
	o.Args = append([]string{"streamux-bench"}, orig...)
	return bench.Run(ctx, scenario, o, stdout, stderr)
}

// intList is a comma-separated list of positive integers as a flag.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("want positive integers separated by commas, got %q", v)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}
