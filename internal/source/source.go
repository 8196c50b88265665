// Package source defines what a source adapter is and runs any adapter: connect, read until an
// error, reconnect with exponential backoff and jitter, and report the state on the way.
//
// An adapter does I/O only. Each Runner has one goroutine, started and waited for by the
// supervisor; it hands messages to its router through Emit, which queues them in the router's
// bounded input and blocks while that input is full, so that a broker sees back-pressure rather
// than an unbounded buffer.
//
// It also keeps the registry of source types (registry.go): each adapter package registers its
// type from init, so the registry is complete before main and only read after; Lookup and Types
// are then safe from any goroutine. What only some adapters do is an optional interface here
// (Counted, Publisher, Acknowledging, Resuming), asked of the adapter by whoever needs it.
package source

import (
	"context"
	"net/http"

	"github.com/streamux/streamux/internal/stream"
)

// Source is one adapter's connection to its stream.
type Source interface {
	// Run connects, calls up once it is connected and reading, passes every message read to
	// emit, and returns when the connection fails (with the error) or ctx is done (with nil or
	// ctx.Err()). Before it returns it releases everything it opened. Run is called again,
	// after a backoff, each time it returns an error.
	Run(ctx context.Context, up func(), emit Emit) error
}

// Publisher is an adapter that takes its messages through the API (the http type): POST
// /v1/sources/{name}/messages hands it each request. An optional interface: the API asks the
// source named in the path for it, and answers 405 for a source without it.
type Publisher interface {
	// Publish reads r's messages and hands them to the source's router, in order, and returns
	// how many it handed over, also when it fails. A *PublishError says what to answer; any
	// other error is answered 500. stop ends the server's patience: a request that would run
	// on (a streamed body) ends when it is done. Publish is called from any goroutine, at
	// once by as many requests as come.
	Publish(stop context.Context, r *http.Request, w http.ResponseWriter) (Published, error)
}

// Published is what a Publisher took of a request, also when it failed part way.
type Published struct {
	// N is how many messages were published.
	N int
	// Seqs are their sequence numbers, in a cluster, where the log gave them (Logged); nil
	// otherwise, where the router numbers them later.
	Seqs []uint64
}

// Log is, in a cluster, a source's replicated log (internal/cluster): what is appended to it
// reaches the routers of every node, under the sequence it was given.
type Log interface {
	// Append stores msgs, in order, and returns their sequences, for a prefix of msgs when
	// it fails part way. Once it returns nil, the messages are stored on a majority of the
	// log's replicas. A message whose UpstreamID the log holds already (within its
	// duplicate window) is not stored again: its sequence is the first one's. Safe from any
	// goroutine.
	Append(ctx context.Context, msgs []*stream.Message) ([]uint64, error)
}

// Acknowledging is an adapter that acknowledges a message upstream only once Emit returned nil
// for it, so that the upstream delivers again what was not taken (RabbitMQ with ack:
// after_route, Kafka with a consumer group). In a cluster, its Emit returns once the log has
// stored the message, so that what it acknowledges is in the log; the messages of the other
// adapters, which the upstream would not deliver again anyway, are appended in batches behind
// an Emit that returns at once.
type Acknowledging interface {
	// AcknowledgesAfterEmit reports whether the adapter, as configured, does.
	AcknowledgesAfterEmit() bool
}

// Resuming is an adapter that keeps its place in its upstream itself, because the upstream keeps
// none for it (a RabbitMQ stream read over AMQP 0-9-1 has no server-side offsets): given a Store
// in the data directory before Run, it records there how far its router has taken the stream,
// and the next run of the process goes on from there instead of from its configured start.
// Without a data directory it is given none, and keeps its place in memory, across reconnects
// only. In a cluster the Store is the cluster's, shared by the nodes, and UseStore is called
// again each time this node takes the source's lease, before Run: the adapter then reads its
// place from the store again, as another node may have moved it since.
type Resuming interface {
	// UseStore makes the adapter keep its place in st, read from it again at the next Run.
	// Called before Run, never during it.
	UseStore(st Store)
}

// Store is one source's small record in the data directory, written and read by its adapter
// alone, from one goroutine at a time.
type Store interface {
	// Load returns what the last Save stored, or nil if nothing was ever saved.
	Load() ([]byte, error)
	// Save replaces the record with b, and returns once it is on disk: a crash of the process
	// or of the machine afterwards leaves b, and one during Save leaves b or the record
	// before it, never neither.
	Save(b []byte) error
}

// Logged is an adapter that, in a cluster, appends its messages to its source's log itself,
// many at a time, rather than through an Emit that takes one (the http source); its requests
// are then answered once the log stored their messages, with their ids.
type Logged interface {
	// UseLog makes the adapter append to l. Called before Run.
	UseLog(l Log)
}

// PublishError is a request a Publisher could not take, as the API answers it: the HTTP Status,
// the error Code of API.md and a Message.
type PublishError struct {
	Status  int
	Code    string
	Message string
}

func (e *PublishError) Error() string { return e.Message }

// Emit hands one message to the router. It returns nil once the router has accepted the message:
// it is queued in the router's bounded input (router.InputSize), and the router routes every
// message it accepted, in the order accepted, before it stops, and before anything sent to it
// after Emit returned (a subscription, a history read, the source's next state change). So nil
// promises that the message will be routed, not that it has been: one accepted and not yet routed
// is lost only if the process dies, as are the events queued for clients. Emit blocks while the
// input is full. It returns ctx.Err() if ctx ends first, or an error once the router has stopped
// (a stopped router never accepts a message); the message was then not accepted, and the adapter
// should give it back to its broker if it can. Source and Seq are set by the router; the adapter
// sets Key, Headers, Body and Time. The message must not be touched once Emit is called, and
// nothing it holds may be either: Body must not share memory with a buffer that the adapter or
// its client library will read into again (see stream.Message.Body); where a library hands
// over such a slice, the adapter passes on a copy.
type Emit func(ctx context.Context, m *stream.Message) error

// State is where a source is in its life.
type State string

// The states of a source, as GET /v1/sources shows them.
const (
	Connecting   State = "connecting"
	Up           State = "up"
	Reconnecting State = "reconnecting"
	Failed       State = "failed"
	Stopped      State = "stopped"
)
