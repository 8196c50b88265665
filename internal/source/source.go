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
// (Counted, Publisher), asked of the adapter by whoever needs it.
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
	Publish(stop context.Context, r *http.Request, w http.ResponseWriter) (int, error)
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
