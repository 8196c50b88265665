// Package transport holds what the three client transports (ws, sse, ndjson) share: the
// Session they serve, the one shape they serve it in (Stream), and their options.
//
// Each transport package makes a Stream of one client's connection (sse.New and ndjson.New of
// an HTTP response, the ws Hub's Upgrade of a WebSocket handshake), whose Serve writes the
// session's output to it until the stream ends. SSE and NDJSON streams are written by the
// goroutine that calls Serve (the HTTP request's), the output's only consumer; a WebSocket
// stream's Serve reads the client's frames while the ws package's Hub writes.
package transport

import (
	"context"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
)

// Session is one subscription as a transport serves it.
type Session struct {
	// Out is the subscription's queue; the transport is its only consumer.
	Out *output.Output
	// Backlog is written before what Out queues: the history a resume replays, gaps first.
	Backlog []*stream.Event
	// Positions holds the stream's position in each source it reads, until it delivers an
	// event of it. SSE gives ids over several sources with it; the others ignore it.
	Positions map[string]uint64
	Options   Options
}

// Stream is one client's connection, ready to stream: an SSE or NDJSON response, or an
// upgraded WebSocket.
type Stream interface {
	// Serve writes the session to the client until the output ends, ctx is done (the
	// client went away), the client ends the stream, or a write fails, and returns why. It is
	// called once.
	Serve(ctx context.Context, s *Session) error
}

// Options tune a transport. Zero values take the defaults.
type Options struct {
	// Written, if set, is told after each write how many events it carried and when the
	// oldest message among them was received (for metrics).
	Written func(events int, oldest time.Time)
	// WriteTimeout cuts a client that does not take a write within it (a stalled TCP peer).
	// Defaults to 10s.
	WriteTimeout time.Duration
	// Heartbeat is the interval of SSE comment lines and WebSocket pings on a quiet stream.
	// Defaults to 15s.
	Heartbeat time.Duration
	// MaxBatch is the most events joined into one write. Defaults to 256.
	MaxBatch int
	// WriteDelay makes WebSocket connections written at most once per delay, so that what is
	// queued meanwhile joins one write: fewer, larger writes (less CPU per event) for up to
	// this much more latency; the first event after a quiet spell goes at once. 0 writes at
	// once. The server's, not a stream's.
	WriteDelay time.Duration
	// Batch joins the events of one WebSocket write into one frame, one event per line, instead
	// of one frame each. A stream's own (the batch query parameter).
	Batch bool
	// MaxClientFrame is the largest frame a WebSocket client may send; a larger one closes the
	// connection with 1009. Defaults to 64 KiB.
	MaxClientFrame int64
}

// WithDefaults returns o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxClientFrame <= 0 {
		o.MaxClientFrame = 64 << 10
	}
	return o
}
