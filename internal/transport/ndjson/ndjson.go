// Package ndjson serves a subscription as newline-delimited JSON (application/x-ndjson): one
// event a line, flushed as it goes. The HTTP request goroutine is the only writer.
package ndjson

import (
	"net/http"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// ContentType is the media type of the stream.
const ContentType = "application/x-ndjson"

// Serve streams out to w until the output ends, the client goes away or a write fails, and
// returns why. NDJSON has no room for heartbeats (every line must be an event), so a dead peer
// is found by the write timeout or the connection's close.
func Serve(w http.ResponseWriter, r *http.Request, out *output.Output, backlog []*stream.Event, opt transport.Options) error {
	opt = opt.WithDefaults()
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	lw := &writer{w: w, rc: http.NewResponseController(w), timeout: opt.WriteTimeout}
	if err := lw.flush(); err != nil {
		return err
	}
	return out.Pump(r.Context(), lw, backlog, output.PumpOptions{Heartbeat: opt.Heartbeat, MaxBatch: opt.MaxBatch, Written: opt.Written})
}

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
