package router

import (
	"time"

	"github.com/streamux/streamux/internal/stream"
)

// ring is the history: the last len(buf) message events, indexed by sequence number.
//
// It holds pointers to events, each encoded into a buffer of its own (stream.NewMessage) with a
// message whose Body is its own; a slot is overwritten with another pointer, never refilled in
// place, so an event that a queue, a Backlog or /v1/check still holds never changes.
type ring struct {
	buf      []*stream.Event
	n        int           // how many are held
	maxAge   time.Duration // 0: no limit
	maxBytes int64         // 0: no limit
	bytes    int64         // the Footprint of the events held
	last     uint64        // the newest sequence number pushed
}

func newRing(h History) ring {
	return ring{buf: make([]*stream.Event, h.Size), maxAge: h.MaxAge, maxBytes: h.MaxBytes}
}

// oldest is the index in buf of the oldest event held; n > 0.
func (h *ring) oldest() uint64 {
	return (h.last - uint64(h.n) + 1) % uint64(len(h.buf))
}

// forgetOldest drops the oldest event held; n > 0.
func (h *ring) forgetOldest() {
	i := h.oldest()
	h.bytes -= int64(h.buf[i].Footprint())
	h.buf[i] = nil
	h.n--
}

// clear forgets every event held.
func (h *ring) clear() {
	clear(h.buf)
	h.n = 0
	h.bytes = 0
}

// trim forgets the messages older than maxAge.
func (h *ring) trim(now time.Time) {
	if h.maxAge <= 0 {
		return
	}
	cutoff := now.Add(-h.maxAge)
	for h.n > 0 && h.buf[h.oldest()].Msg.Time.Before(cutoff) {
		h.forgetOldest()
	}
}

// push adds ev, the newest, forgetting the oldest events for room: by count, then by bytes. An
// event larger than maxBytes alone is not kept at all.
func (h *ring) push(ev *stream.Event) {
	if h.n == len(h.buf) {
		h.forgetOldest()
	}
	h.buf[ev.Seq()%uint64(len(h.buf))] = ev
	h.last = ev.Seq()
	h.n++
	h.bytes += int64(ev.Footprint())
	for h.maxBytes > 0 && h.bytes > h.maxBytes {
		h.forgetOldest()
	}
}

// after returns the events with sequence numbers after seq, given that last is the newest.
func (h *ring) after(seq, last uint64) Backlog { return h.afterN(seq, last, 0) }

// afterN is after for at most n events (0: all).
func (h *ring) afterN(seq, last uint64, n int) Backlog {
	var b Backlog
	if seq > last {
		b.Unknown = true
		seq = 0
	}
	oldest := last - uint64(h.n) + 1
	start := seq + 1
	if start < oldest {
		b.Missed = oldest - start
		start = oldest
	}
	if start > last {
		return b
	}
	end := last
	if n > 0 && last-start+1 > uint64(n) {
		end = start + uint64(n) - 1
	}
	b.Events = make([]*stream.Event, 0, end-start+1)
	for s := start; s <= end; s++ {
		b.Events = append(b.Events, h.buf[s%uint64(len(h.buf))])
	}
	return b
}

// at returns the event with sequence number seq, or nil when the history does not hold it.
func (h *ring) at(seq, last uint64) *stream.Event {
	if seq == 0 || seq > last || seq <= last-uint64(h.n) {
		return nil
	}
	return h.buf[seq%uint64(len(h.buf))]
}

// since returns the events received at t or after. Times are kept to the millisecond, so the
// same t may be another event's too; for a source the client has seen nothing of, which is what
// since serves, the events of that millisecond are better sent than lost.
func (h *ring) since(t time.Time, last uint64) Backlog {
	var b Backlog
	first := last - uint64(h.n) + 1
	for s := first; s <= last; s++ {
		if ev := h.buf[s%uint64(len(h.buf))]; !ev.Msg.Time.Before(t) {
			b.Events = make([]*stream.Event, 0, last-s+1)
			for ; s <= last; s++ {
				b.Events = append(b.Events, h.buf[s%uint64(len(h.buf))])
			}
			break
		}
	}
	return b
}
