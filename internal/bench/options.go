package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scenarios lists the scenarios Run knows, in the order the help shows them.
var Scenarios = []string{"fanout", "broadcast", "idle", "match", "ingest", "churn", "slow", "cluster", "sink"}

// Options configure a run. A zero field takes the scenario's default (see Defaults); the
// command line of `streamux-bench` sets them, one flag each.
type Options struct {
	// Clients is the number of WebSocket clients: all of them (fanout, broadcast, idle), the
	// fast ones (slow), or how many churn at once (churn).
	Clients int
	// Keys is the number of distinct keys messages are spread over; fanout client i reads
	// key "k<i mod Keys>". match uses its own MatchKeys.
	Keys int
	// Rate is the published messages per second (fanout, broadcast, slow, churn); with Ramp,
	// the first step's rate.
	Rate float64
	// Size is the message body's size in bytes, its send timestamp included.
	Size int
	// Duration is how long the measurement lasts (each server's, in fanout and broadcast;
	// both halves together, in slow; each subscription count's, in match).
	Duration time.Duration
	// Warmup runs the load before the measurement starts, unmeasured.
	Warmup time.Duration

	// URL, if set, is a running streamux to measure instead of starting one; it must have an
	// http source named SourceName. Its CPU and memory come from its /metrics (process_*), or
	// from /proc of PID when PID is set.
	URL string
	PID int
	// InProcess runs the servers in this process instead of as subprocesses: simpler to debug,
	// but the CPU time and memory measured are then the whole process's, clients included.
	InProcess bool
	// Bare also measures the bare WebSocket loop, with the same clients and load, right after
	// streamux; BareJoin adds the variant that joins up to 64 events in one frame.
	Bare     bool
	BareJoin bool

	// Source is how messages reach streamux: http (NDJSON envelopes in bulk to the ingest
	// endpoint), demo (the demo source at Rate, configured in the server) or amqp (published to
	// RabbitMQ at AMQPURL, read by an amqp source).
	Source     string
	SourceName string
	AMQPURL    string
	// PublishEvery is how often the publisher sends what has come due: one request to the
	// http source, or one burst of publishings to RabbitMQ. Each request costs the server a
	// few system calls and wake-ups whatever it carries.
	PublishEvery time.Duration
	// IngestStream has the publisher write into one streaming ingest request (?stream=true)
	// instead of making a request per batch.
	IngestStream bool
	// Policy is the slow-consumer policy the clients ask for: disconnect or drop.
	Policy string
	// QueueEvents and MaxBatch, if set, override streamux's limits.queue_events and
	// stream.max_batch.
	QueueEvents int
	MaxBatch    int
	// WriteDelay is streamux's stream.write_delay: each WebSocket connection is written at
	// most once per delay.
	WriteDelay time.Duration
	// Batch has the clients ask streamux for batch frames (several events per frame, one per
	// line).
	Batch bool

	// Ramp raises the rate step by step (RampFactor each RampStep) until the p99 latency passes
	// P99, or deliveries fall behind or drop, twice at the same rate, and reports the highest
	// rate that held.
	Ramp       bool
	P99        time.Duration
	RampStep   time.Duration
	RampFactor float64
	MaxRate    float64

	// Subs are the subscription counts of match; MatchKeys the keys its messages spread over.
	Subs      []int
	MatchKeys int
	// Cycles is how many clients churn connects and closes.
	Cycles int
	// Messages and Rounds size ingest: messages per round, rounds alternating between streamux
	// and the bare consumers.
	Messages int
	Rounds   int
	// IngestVia is how ingest feeds streamux: amqp (RabbitMQ, against bare consumers), or
	// the http source's endpoint with ndjson (plain lines), envelope (?envelope=true) or
	// stream (?stream=true).
	IngestVia string
	// Parallel is how many clients connect at once.
	Parallel int
	// SinkBatches are the sink scenario's batch.max values, a server each; SinkWait its
	// batch.wait; SinkMemory runs its servers with data_dir: memory, so that positions are
	// kept in memory instead of saved to the data directory after each batch.
	SinkBatches []int
	SinkWait    time.Duration
	SinkMemory  bool

	// NATSURL is the JetStream server the cluster scenario's nodes share; NATSPID, if set, is
	// its process, whose CPU time the scenario reads from /proc (0: a local process named
	// nats-server, if there is exactly one).
	NATSURL string
	NATSPID int
	// ClusterStorage and ClusterReplicas are the cluster: block's storage and replicas.
	ClusterStorage  string
	ClusterReplicas int
	// MaxPosters bounds the requests the cluster scenario's append stage sends at once.
	MaxPosters int
	// ClientPing is how often each client sends a ping, as many client libraries do; 0 never.
	// A client that only listens is otherwise cut by streamux after 2×heartbeat+write timeout
	// (40 s) of steady traffic: its server pings only idle streams.
	ClientPing time.Duration

	// CPUProfile, if set, receives a CPU profile of the streamux server over the measurement
	// (of the bare server, when measured, in CPUProfile+".bare"); for ingest, of this process
	// over every round, each consumer's turns labelled consumer=NAME.
	CPUProfile string
	// HeapProfile, if set, receives the server's heap profiles: before and after churn
	// (HeapProfile+".before", ".after"; compare them with go tool pprof -base), and with the
	// idle clients connected (HeapProfile+".streamux", ".bare").
	HeapProfile string
	// JSON prints the report as JSON instead of a table.
	JSON bool
	// Quiet turns the progress line off.
	Quiet bool

	// Child is the command that starts a server subprocess, `streamux-bench server`, and
	// ChildEnv is added to its environment.
	Child    []string
	ChildEnv []string
	// Args is the command line, recorded in the report.
	Args []string
}

// Defaults returns the options of scenario with every default filled in.
func Defaults(scenario string) Options {
	o := Options{
		Clients: 1000, Keys: 100, Size: 64, Duration: 10 * time.Second, Warmup: time.Second,
		Bare: true, Source: "http", SourceName: "bench", AMQPURL: "amqp://guest:guest@127.0.0.1:5672/",
		Policy: "disconnect", P99: 100 * time.Millisecond, RampStep: 2 * time.Second, RampFactor: 1.25,
		Subs: []int{1000, 100000}, MatchKeys: 1000, Cycles: 10000, Messages: 50000, Rounds: 3, IngestVia: "amqp",
		Parallel: 64, ClientPing: 10 * time.Second, PublishEvery: 2 * time.Millisecond,
		NATSURL: "nats://127.0.0.1:4222", ClusterStorage: "file", ClusterReplicas: 1, MaxPosters: 64,
	}
	switch scenario {
	case "fanout", "cluster":
		o.Rate = 4000 // 40,000 deliveries/s at 1,000 clients over 100 keys: issue 6's CPU target
	case "broadcast":
		o.Rate = 40 // 40,000 deliveries/s at 1,000 clients
	case "slow":
		// 2 KiB bodies, so that the client that never reads fills the kernel's buffers and
		// its queue within a few seconds: 100 KiB/s would take a minute.
		o.Clients, o.Rate, o.Size = 100, 500, 2048
	case "churn":
		o.Clients, o.Rate, o.Duration = 50, 1000, 0
	case "match":
		o.Duration = 2 * time.Second
	case "sink":
		o.Messages, o.SinkBatches = 20000, []int{1, 100, 1000}
	}
	return o
}

func (o *Options) validate(scenario string) error {
	switch {
	case o.Clients <= 0 || o.Keys <= 0 || o.Size < 0 || o.Parallel <= 0:
		return fmt.Errorf("-clients, -keys and -parallel must be positive")
	case o.Rate < 0 || o.MaxRate < 0:
		return fmt.Errorf("-rate must be positive")
	case o.Duration < 0 || o.Warmup < 0:
		return fmt.Errorf("-duration and -warmup must be positive")
	case o.IngestStream && o.Source != "http":
		return fmt.Errorf("-ingest-stream is for -source http, not %s", o.Source)
	case o.PublishEvery <= 0 || o.PublishEvery > time.Second:
		return fmt.Errorf("-publish-every must be over 0 and at most 1s, got %v", o.PublishEvery)
	case o.Ramp && (o.RampFactor <= 1 || o.RampStep <= 0 || o.P99 <= 0):
		return fmt.Errorf("-ramp needs -ramp-factor > 1, -ramp-step > 0 and -p99 > 0")
	case o.Policy != "disconnect" && o.Policy != "drop":
		return fmt.Errorf("-policy must be disconnect or drop, got %q", o.Policy)
	}
	if !slices.Contains(IngestVias, o.IngestVia) {
		return fmt.Errorf("-ingest-via must be one of %s, got %q", strings.Join(IngestVias, ", "), o.IngestVia)
	}
	switch o.Source {
	case "http", "demo", "amqp":
	default:
		return fmt.Errorf("-source must be http, demo or amqp, got %q", o.Source)
	}
	if o.Ramp && o.Source == "demo" {
		return fmt.Errorf("-ramp needs a rate the bench controls: -source http or amqp")
	}
	if o.Source != "http" && o.URL != "" {
		return fmt.Errorf("-url needs -source http: the bench cannot configure a running server's sources")
	}
	if scenario == "cluster" {
		switch {
		case o.URL != "" || o.InProcess:
			return fmt.Errorf("cluster starts its nodes as subprocesses, to read each one's CPU: -url and -inprocess do not apply")
		case o.Source != "http":
			return fmt.Errorf("cluster feeds an http source: -source %s does not apply", o.Source)
		case o.NATSURL == "":
			return fmt.Errorf("cluster needs -nats-url")
		case o.ClusterStorage != "file" && o.ClusterStorage != "memory":
			return fmt.Errorf("-cluster-storage must be file or memory, got %q", o.ClusterStorage)
		case o.ClusterReplicas != 1 && o.ClusterReplicas != 3:
			return fmt.Errorf("-cluster-replicas must be 1 or 3, got %d", o.ClusterReplicas)
		case o.MaxPosters <= 0:
			return fmt.Errorf("-max-posters must be positive")
		case o.RampStep <= 0:
			return fmt.Errorf("cluster needs -ramp-step > 0: each step of its append stage lasts that long")
		}
	}
	if !o.InProcess && o.URL == "" && len(o.Child) == 0 && scenario != "match" && scenario != "ingest" {
		return fmt.Errorf("no way to start a server: neither -inprocess, -url, nor a child command")
	}
	return nil
}
