package amqp

import (
	"sync"
	"time"

	"github.com/streamux/streamux/internal/source"
)

// keepGap is the least time between two records of a stream's place while the source is not
// held back by the place on disk: a busy stream is recorded up to 100 times a second, not as
// often as the disk allows, which would be thousands of syncs a second on a fast disk, taken
// from the broker's own writes where it shares the disk.
const keepGap = 10 * time.Millisecond

// keeper records a stream source's place in its store from a goroutine of its own, so that the
// consuming loop does not wait for the disk: the loop notes the place after every message the
// router took, and the keeper saves the latest one noted, one save at a time, each covering
// everything noted before it starts, at most every keepGap unless a note is urgent (the loop
// is about to be held back). It answers every save on done, in order.
//
// Concurrency: note and stop belong to the consuming loop's goroutine; the keeper's goroutine
// is started by startKeeper and waited for by stop.
type keeper struct {
	st    source.Store
	queue string

	mu     sync.Mutex
	latest mark

	dirty  chan struct{}   // holds a token once a place was noted since the keeper last looked
	urgent chan struct{}   // holds a token once an urgent place was noted
	done   chan saveResult // each save's result; closed when the goroutine ends
	ended  chan struct{}   // closed by stop
}

// mark is a place to record: the offset of the last message the router took, and how many
// messages of the connection it covers (loop.emitted).
type mark struct {
	offset  int64
	emitted uint64
}

// saveResult is the outcome of recording a mark.
type saveResult struct {
	mark
	err error
}

func startKeeper(st source.Store, queue string) *keeper {
	k := &keeper{
		st: st, queue: queue,
		dirty: make(chan struct{}, 1), urgent: make(chan struct{}, 1),
		done: make(chan saveResult, 1), ended: make(chan struct{}),
	}
	go k.run() // ended by stop, which waits for done to close
	return k
}

func (k *keeper) run() {
	defer close(k.done)
	var (
		saved uint64
		last  time.Time
	)
	gap := time.NewTimer(keepGap)
	defer gap.Stop()
	for {
		select {
		case <-k.ended:
			return
		case <-k.dirty:
		}
		if wait := keepGap - time.Since(last); wait > 0 {
			gap.Reset(wait)
			select {
			case <-k.ended:
				return // stop records the last place itself
			case <-k.urgent:
			case <-gap.C:
			}
		}
		select {
		case <-k.urgent: // this save answers it
		default:
		}
		k.mu.Lock()
		m := k.latest
		k.mu.Unlock()
		if m.emitted == saved {
			continue
		}
		saved, last = m.emitted, time.Now()
		// Read by the loop, or, once it stopped reading, drained by stop.
		k.done <- saveResult{mark: m, err: k.st.Save(encodePosition(k.queue, m.offset))}
	}
}

// note makes m the place to record next; urgent, as soon as the save in progress, if any, is
// over.
func (k *keeper) note(m mark, urgent bool) {
	k.mu.Lock()
	k.latest = m
	k.mu.Unlock()
	select {
	case k.dirty <- struct{}{}:
	default: // a token is waiting already
	}
	if urgent {
		select {
		case k.urgent <- struct{}{}:
		default:
		}
	}
}

// stop ends the keeper's goroutine, after the save in progress if any, and returns the last
// result it gave (ok false if none was left to read).
func (k *keeper) stop() (saveResult, bool) {
	close(k.ended)
	var (
		last saveResult
		ok   bool
	)
	for r := range k.done {
		last, ok = r, true
	}
	return last, ok
}
