package output

import (
	"context"
	"time"

	"github.com/streamux/streamux/internal/stream"
)

// Writer writes events to one client connection. Its methods are called from the pump's
// goroutine only.
type Writer interface {
	// Write sends evs, in order, with as few system calls as the transport allows (one flush).
	Write(evs []*stream.Event) error
	// Heartbeat keeps an idle connection alive (an SSE comment line).
	Heartbeat() error
}

// PumpOptions tune Pump. Zero values take the defaults.
type PumpOptions struct {
	// Heartbeat is the longest an idle stream goes without a heartbeat (one goes a little
	// earlier). Defaults to 15s.
	Heartbeat time.Duration
	// MaxBatch is the most events joined into one write. Defaults to 256.
	MaxBatch int
	// Written, if set, is told after each write how many events it carried and when the
	// oldest message among them was received (zero if none was a message): for metrics, once
	// per write rather than once per event.
	Written func(events int, oldest time.Time)
}

// closed is ready at once: the pump selects on it to look at its other channels without waiting
// while events remain queued.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Pump writes the backlog, then every event queued, until the output ends (it returns Err), ctx
// is done (the client went away: ErrClientGone), or a write fails (that error). Each round takes
// everything queued, up to MaxBatch, into one Write. Pump is the output's consumer: it sets the
// output's notification (SetNotify) to a channel of its own.
func (o *Output) Pump(ctx context.Context, w Writer, backlog []*stream.Event, opt PumpOptions) error {
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = 15 * time.Second
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	for len(backlog) > 0 {
		n := min(len(backlog), opt.MaxBatch)
		if err := o.write(w, backlog[:n], nil); err != nil {
			return err
		}
		backlog = backlog[n:]
		if err := o.Err(); err != nil {
			return err
		}
	}
	ready := make(chan struct{}, 1)
	o.SetNotify(func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	// A heartbeat goes a little before Heartbeat has passed, so that the peer sees one at least
	// that often despite the delays of the timer and of the write.
	every := opt.Heartbeat - min(opt.Heartbeat/30, 500*time.Millisecond)
	hb := time.NewTicker(every)
	defer hb.Stop()
	batch := make([]*stream.Event, 0, 16)
	more := true // events may have been queued before the pump started
	for {
		if more {
			if err := o.Err(); err != nil {
				return err
			}
			batch, more = o.Take(batch[:0], opt.MaxBatch)
			if len(batch) > 0 {
				err := o.write(w, batch, opt.Written)
				clear(batch) // let the events be collected once the history forgets them
				if err != nil {
					return err
				}
				hb.Reset(every)
			}
		}
		var busy chan struct{}
		if more {
			busy = closed // events remain: look at the other channels, but do not wait
		}
		select {
		case <-busy:
		case <-ready:
			more = true
		case <-hb.C:
			if err := w.Heartbeat(); err != nil {
				return err
			}
		case <-o.done:
			return o.reason
		case <-ctx.Done():
			return ErrClientGone
		}
	}
}

func (o *Output) write(w Writer, evs []*stream.Event, written func(int, time.Time)) error {
	if err := w.Write(evs); err != nil {
		return err
	}
	n, oldest := Messages(evs)
	o.delivered.Add(n)
	if written != nil {
		written(len(evs), oldest)
	}
	return nil
}

// Messages counts the messages among evs (the rest are gap and status events) and returns when
// the oldest of them was received (zero if none): what a write reports to the metrics.
func Messages(evs []*stream.Event) (n uint64, oldest time.Time) {
	for _, ev := range evs {
		if ev.Kind == stream.KindMessage {
			if n == 0 || ev.Msg.Time.Before(oldest) {
				oldest = ev.Msg.Time
			}
			n++
		}
	}
	return n, oldest
}
