// Package sse serves a subscription as Server-Sent Events: "id:" is the event id, "event:" the
// type, "data:" the JSON, and a comment line is sent as a heartbeat. The goroutine that calls
// Serve (the HTTP request's) is the only writer.
//
// A stream that reads several sources gives each message the id of its own source first,
// followed by the stream's position in every other source ("orders:17,demo:42"): the browser
// sends the whole id back as Last-Event-ID when it reconnects, so every source resumes where it
// stood and the reconnect loses nothing in any of them.
package sse

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/poison"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// ContentType is the media type of the stream.
const ContentType = "text/event-stream"

// Stream is an SSE response, ready to stream.
type Stream struct {
	w http.ResponseWriter
}

// New returns the stream that w will carry; nothing is written before Serve.
func New(w http.ResponseWriter) *Stream { return &Stream{w: w} }

var _ transport.Stream = (*Stream)(nil)

// Serve streams s to the client until the output ends, ctx is done (the client went away) or a
// write fails, and returns why. s.Positions gives the ids over several sources (see the package
// doc); with one source, or none given, ids are plain event ids.
func (st *Stream) Serve(ctx context.Context, s *transport.Session) error {
	opt := s.Options.WithDefaults()
	w := st.w
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &writer{w: w, rc: http.NewResponseController(w), timeout: opt.WriteTimeout}
	for name := range s.Positions {
		sw.names = append(sw.names, name)
	}
	sort.Strings(sw.names)
	sw.seqs = make([]uint64, len(sw.names))
	for i, name := range sw.names {
		sw.seqs[i] = s.Positions[name]
	}
	// The first lines flush the headers, so that EventSource fires "open" at once, tell the
	// browser how soon to reconnect, and set its last event id to where the stream starts:
	// an event with an id and no data is not dispatched, but a reconnect before any message
	// then still resumes from here rather than live.
	b := append(sw.buf[:0], ": streamux\nretry: 2000\n"...)
	if len(sw.names) > 0 {
		b = append(b, "id: "...)
		for i, name := range sw.names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, name...)
			b = append(b, ':')
			b = strconv.AppendUint(b, sw.seqs[i], 10)
		}
		b = append(b, '\n')
	}
	b = append(b, '\n')
	sw.buf = b
	if _, err := w.Write(b); err != nil {
		return err
	}
	if len(sw.names) == 1 {
		sw.names, sw.seqs = nil, nil // one source: ids are plain event ids
	}
	if err := sw.rc.Flush(); err != nil {
		return err
	}
	return s.Out.Pump(ctx, sw, s.Backlog, output.PumpOptions{Heartbeat: opt.Heartbeat, MaxBatch: opt.MaxBatch, Written: opt.Written})
}

// writer is the pump's: every call comes from the goroutine that runs Serve.
type writer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
	// names and seqs are the stream's position per source, sorted by name; empty for a
	// stream of one source.
	names []string
	seqs  []uint64
}

// appendID appends ev's id and, for a stream of several sources, the position in the others.
func (s *writer) appendID(b []byte, ev *stream.Event) []byte {
	b = append(b, ev.Source...)
	b = append(b, ':')
	b = strconv.AppendUint(b, ev.Seq(), 10)
	if len(s.names) == 0 {
		return b
	}
	for i, name := range s.names {
		if name == ev.Source {
			s.seqs[i] = ev.Seq()
		}
	}
	for i, name := range s.names {
		if name != ev.Source {
			b = append(b, ',')
			b = append(b, name...)
			b = append(b, ':')
			b = strconv.AppendUint(b, s.seqs[i], 10)
		}
	}
	return b
}

func (s *writer) Write(evs []*stream.Event) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	for _, ev := range evs {
		b := s.buf[:0]
		if ev.Kind == stream.KindMessage {
			b = append(b, "id: "...)
			b = s.appendID(b, ev)
			b = append(b, '\n')
		}
		b = append(b, "event: "...)
		b = append(b, ev.Kind.String()...)
		b = append(b, "\ndata: "...)
		s.buf = b
		if _, err := s.w.Write(b); err != nil {
			return err
		}
		// An io.Writer keeps nothing of what it is given (net/http's copies it into its
		// own buffer): the next event's lines are laid out in b at once.
		poison.Bytes(b)
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
