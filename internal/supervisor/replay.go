package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// A replay serves, in a cluster, a resume from an id that the source's router no longer holds
// (or has not read yet) but the log does. It reads the log in spans after the client's id,
// matches each message against the predicate and queues those that match in the
// subscription's output, waiting for room, as a client that reads takes them; then, once it is
// close to what the router holds, it registers the subscription with the router, which queues
// the rest of its history after the replay's last id and the live messages after that
// (router.Resume.Queue). No message is missed or repeated between the log and the router:
// both are the same log under the same sequences. Memory is bounded by the queue: the replay
// is as deep as the log, and as fast as the client reads.

// Replay tuning.
const (
	// replaySpan is how many items a replay reads from the log at a time.
	replaySpan = 1024
	// replayJoin is how far behind the router's last message a replay may be when it joins
	// the router: the router queues that much history at once, so it must fit the queue.
	replayJoin = 256
	// replayPoll is how often a replay that waits (for room in the queue, for the router to
	// read the log up to it) looks again.
	replayPoll = 2 * time.Millisecond
	// replayFailures is how many failed reads of the log in a row end a replay.
	replayFailures = 5
)

// replay serves sub's resume in source n from after on, as above, until it has joined the
// router, the output ends, or ctx does. It runs on a goroutine of the subscription's own,
// which Close waits for.
func (s *Supervisor) replay(ctx context.Context, sub *Subscription, n string, after uint64) {
	c, r, out := s.logs[n], s.t().routers[n], sub.Out
	var in predicate.Input
	pos := after
	failures := 0
	progress := time.Now() // when pos last moved, or the router last moved toward it
	lastSeen := r.Counters().LastSeq
	atEnd := false // the last read found nothing after pos
	for ctx.Err() == nil && out.Err() == nil {
		last := r.Counters().LastSeq
		if last != lastSeen {
			lastSeen, progress = last, time.Now()
		}
		// At the router's last message there is nothing to queue on joining; short of it,
		// the queue must be empty to take what the router still holds after pos.
		if pos <= last && last-pos <= replayJoin && (out.Depth() == 0 || pos == last) {
			b, err := r.Add(ctx, out, sub.Predicate, router.Resume{After: pos, Set: true, Log: true, Queue: true})
			if err != nil || !b.FromLog {
				return // joined, or the router stopped (the output ends with the shutdown)
			}
			// The router forgot what follows pos meanwhile (a hole in the log): read on.
		}
		if atEnd && last <= pos {
			// The log ended at pos when last read, and this node has not read past it
			// since: the router reads every message of the log, so it moves past pos
			// once the log holds more. Wait for that (or for room to join), within the
			// bound of a resume that waits, rather than read the log again at every
			// poll: each read makes and deletes a consumer on the servers.
			if !s.waitReplay(ctx, out, n, pos, last, progress) {
				return
			}
			continue
		}
		items, err := c.read.Fetch(ctx, c.epochNow(), pos+1, replaySpan)
		atEnd = err == nil && len(items) == 0
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, cluster.ErrReset):
			// The feed takes the new log (a Jump) before the router goes on; the next
			// read is of the new log, whose first message comes after pos, as a skip.
			err = nil
		case ctx.Err() != nil:
			return
		default:
			failures++
			s.log.Warn("cluster: replay from the log failed", "source", n, "subscription", out.ID(), "after", pos, "err", err)
			if failures >= replayFailures {
				out.Close(output.ErrReplay)
				return
			}
			if sleep(ctx, source.Backoff{}.Delay(failures)) != nil {
				return
			}
			continue
		}
		if len(items) == 0 {
			// pos is the log's last: wait for the router to read up to it.
			if !s.waitReplay(ctx, out, n, pos, last, progress) {
				return
			}
			continue
		}
		for _, it := range items {
			var ev *stream.Event
			switch it.Kind {
			case cluster.KindSkip:
				ev = stream.NewGap(n, it.Last-it.First+1, stream.GapHistory)
				pos = it.Last
			case cluster.KindMessage:
				m := it.Msg
				m.Time = m.Time.Truncate(time.Millisecond) // as the router keeps it
				pos = m.Seq
				ev = stream.NewMessage(m)
				ok, err := matches(sub.Predicate, &in, m)
				if sub.Predicate != nil && sub.Predicate.Measured() {
					out.NoteCost(in.Cost())
				}
				if errors.Is(err, predicate.ErrTooCostly) {
					out.Close(output.ErrTooCostly)
					r.CountTooCostly()
					return
				}
				if err != nil {
					out.CountEvalError()
				}
				if !ok {
					continue
				}
				out.CountMatch()
			default:
				continue
			}
			if !offerWait(ctx, out, ev) {
				return
			}
		}
		progress = time.Now()
	}
}

// waitReplay waits a poll for the router of source n to read the log up to pos, where a replay
// stands; it reports false, ending the replay, when ctx ends or the router made no progress for
// the bound of a resume that waits (last is what it read, progress when it last moved).
func (s *Supervisor) waitReplay(ctx context.Context, out *output.Output, n string, pos, last uint64, progress time.Time) bool {
	if last < pos && time.Since(progress) > s.opt.ResumeWait {
		s.log.Warn("cluster: this node did not read the log up to a resume's id in time", "source", n, "subscription", out.ID(), "id", pos, "read", last)
		out.Close(output.ErrReplay)
		return false
	}
	return sleep(ctx, replayPoll) == nil
}

// offerWait queues ev in out, waiting for room as the client reads; it reports false when the
// output ended, or ctx did, first. An empty queue takes any one event, so room comes.
func offerWait(ctx context.Context, out *output.Output, ev *stream.Event) bool {
	for !out.Offer(ev) {
		if out.Err() != nil || sleep(ctx, replayPoll) != nil {
			return false
		}
	}
	return true
}

// historySize is how many messages each router keeps.
func (s *Supervisor) historySize() int {
	if s.opt.History.Size > 0 {
		return s.opt.History.Size
	}
	return router.DefaultHistory
}

// logHolds reports whether source n's log holds messages after the id from, as the servers tell
// now: a resume from it is a replay. An id past the log's end comes from elsewhere.
func (s *Supervisor) logHolds(ctx context.Context, n string, from uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.ResumeWait)
	defer cancel()
	info, err := s.logs[n].log.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: the log of %q: %w", ErrUnavailable, n, err)
	}
	return from <= info.Last, nil
}
