// Package sse serves a subscription as Server-Sent Events: "id:" is the event id, "event:" the
// type, "data:" the JSON, and a comment line is sent as a heartbeat. The HTTP request goroutine is
// the only writer.
package sse

import (
	"net/http"
	"strconv"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// ContentType is the media type of the stream.
const ContentType = "text/event-stream"

// Serve streams out to w until the output ends, the client goes away or a write fails, and
// returns why.
func Serve(w http.ResponseWriter, r *http.Request, out *output.Output, backlog []*stream.Event, opt transport.Options) error {
	opt = opt.WithDefaults()
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &writer{w: w, rc: http.NewResponseController(w), timeout: opt.WriteTimeout}
	// The first comment flushes the headers, so that EventSource fires "open" at once, and
	// tells the browser how soon to reconnect.
	if _, err := w.Write([]byte(": streamux\nretry: 2000\n\n")); err != nil {
		return err
	}
	if err := sw.rc.Flush(); err != nil {
		return err
	}
	return out.Pump(r.Context(), sw, backlog, output.PumpOptions{Heartbeat: opt.Heartbeat, MaxBatch: opt.MaxBatch})
}

type writer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
}

func (s *writer) Write(evs []*stream.Event) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	for _, ev := range evs {
		b := s.buf[:0]
		if ev.Kind == stream.KindMessage {
			b = append(b, "id: "...)
			b = append(b, ev.Source...)
			b = append(b, ':')
			b = strconv.AppendUint(b, ev.Seq(), 10)
			b = append(b, '\n')
		}
		b = append(b, "event: "...)
		b = append(b, ev.Kind.String()...)
		b = append(b, "\ndata: "...)
		s.buf = b
		if _, err := s.w.Write(b); err != nil {
			return err
		}
		// The JSON holds no raw newline, so one data line carries it whole.
		if _, err := s.w.Write(ev.Line()); err != nil {
			return err
		}
		if _, err := s.w.Write(newline); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

var newline = []byte{'\n'}

func (s *writer) Heartbeat() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := s.w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return s.rc.Flush()
}

var _ output.Writer = (*writer)(nil)
