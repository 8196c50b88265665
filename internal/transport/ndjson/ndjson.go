// Package ndjson serves a subscription as newline-delimited JSON (application/x-ndjson): one
// event a line, flushed as it goes. The goroutine that calls Serve (the HTTP request's) is the
// only writer.
package ndjson

import (
	"context"
	"net/http"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// ContentType is the media type of the stream.
const ContentType = "application/x-ndjson"

// Stream is an NDJSON response, ready to stream.
type Stream struct {
	w http.ResponseWriter
}

// New returns the stream that w will carry; nothing is written before Serve.
func New(w http.ResponseWriter) *Stream { return &Stream{w: w} }

var _ transport.Stream = (*Stream)(nil)

// Serve streams s to the client until the output ends, ctx is done (the client went away) or a
// write fails, and returns why. NDJSON has no room for heartbeats (every line must be an
// event), so a dead peer is found by the write timeout or the connection's close.
func (st *Stream) Serve(ctx context.Context, s *transport.Session) error {
	opt := s.Options.WithDefaults()
	h := st.w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	st.w.WriteHeader(http.StatusOK)
	lw := &writer{w: st.w, rc: http.NewResponseController(st.w), timeout: opt.WriteTimeout}
	if err := lw.flush(); err != nil {
		return err
	}
	return s.Out.Pump(ctx, lw, s.Backlog, output.PumpOptions{Heartbeat: opt.Heartbeat, MaxBatch: opt.MaxBatch, Written: opt.Written})
}

// writer is the pump's: every call comes from the goroutine that runs Serve.
type writer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (l *writer) Write(evs []*stream.Event) error {
	_ = l.rc.SetWriteDeadline(time.Now().Add(l.timeout))
	for _, ev := range evs {
		if _, err := l.w.Write(ev.Line()); err != nil {
			return err
		}
	}
	return l.flush()
}

func (l *writer) flush() error {
	return l.rc.Flush()
}

// Heartbeat does nothing: a blank line would not be an event.
func (l *writer) Heartbeat() error { return nil }

var _ output.Writer = (*writer)(nil)
