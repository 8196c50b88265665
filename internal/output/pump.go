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
	// Heartbeat keeps an idle connection alive: an SSE comment, a WebSocket ping. It is also
	// where a transport notices a peer that stopped answering.
	Heartbeat() error
}

// PumpOptions tune Pump. Zero values take the defaults.
type PumpOptions struct {
	// Heartbeat is the interval between heartbeats on an idle stream. Defaults to 15s.
	Heartbeat time.Duration
	// HeartbeatBusy keeps the heartbeat going while events flow too: WebSocket pings are how
	// the peer proves it is alive, and a client that only listens answers nothing else.
	HeartbeatBusy bool
	// MaxBatch is the most events joined into one write. Defaults to 256.
	MaxBatch int
	// Wake, when it fires, makes the pump call OnWake: a transport's reader goroutine uses it to
	// have a pong or a close frame written by the one goroutine that writes.
	Wake   <-chan struct{}
	OnWake func() error
	// Written, if set, is told after each write how many events it carried and when the
	// oldest message among them was received (zero if none was a message): for metrics, once
	// per write rather than once per event.
	Written func(events int, oldest time.Time)
}

// Pump writes the backlog, then every event queued, until the output ends (it returns Err), ctx
// is done (the client went away: ErrClientGone), or a write fails (that error). Each round drains
// everything queued, up to MaxBatch, into one Write.
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
	hb := time.NewTicker(opt.Heartbeat)
	defer hb.Stop()
	batch := make([]*stream.Event, 0, 16)
	for {
		select {
		case ev := <-o.q:
			batch = append(batch[:0], ev)
			o.bytes.Add(-int64(ev.Size()))
		fill:
			for len(batch) < opt.MaxBatch {
				select {
				case ev := <-o.q:
					batch = append(batch, ev)
					o.bytes.Add(-int64(ev.Size()))
				default:
					break fill
				}
			}
			err := o.write(w, batch, opt.Written)
			clear(batch) // let the events be collected once the history forgets them
			if err != nil {
				return err
			}
			if !opt.HeartbeatBusy {
				hb.Reset(opt.Heartbeat)
			}
		case <-hb.C:
			if err := w.Heartbeat(); err != nil {
				return err
			}
		case <-opt.Wake:
			if err := opt.OnWake(); err != nil {
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
	var n uint64
	var oldest time.Time
	for _, ev := range evs {
		if ev.Kind == stream.KindMessage {
			if n == 0 || ev.Msg.Time.Before(oldest) {
				oldest = ev.Msg.Time
			}
			n++
		}
	}
	o.delivered.Add(n)
	if written != nil {
		written(len(evs), oldest)
	}
	return nil
}
