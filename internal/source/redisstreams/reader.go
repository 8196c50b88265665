package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redis"
)

// errEmit is what a reader returns once emit refused an entry: ctx is done or the router
// stopped. The entry, and the rest of its read, stay pending in the group.
var errEmit = errors.New("redis-streams: the router took no more")

// reader is one Run's reading of the stream, on its one connection, in Run's goroutine. It
// acknowledges what it passed on with its next command to Redis, in the same round trip
// (XACK, then XREADGROUP or XAUTOCLAIM, in one pipeline), so that acknowledging costs no round
// trip of its own while entries are waiting.
type reader struct {
	s      *Source
	client *goredis.Client
	emit   source.Emit

	// unacked are the ids of the entries passed on (emit returned nil), or found deleted,
	// that Redis has not confirmed acknowledged: at most one read's, Count.
	unacked   []string
	claimedAt time.Time // the last XAUTOCLAIM sweep's start; zero before the first
}

// run passes on this consumer's pending entries, then those claimed from others, then new
// ones, sweeping for entries to claim again every claim_idle, until an error.
func (r *reader) run(ctx context.Context) error {
	if err := r.pending(ctx); err != nil {
		return err
	}
	cfg := &r.s.cfg
	for {
		if time.Since(r.claimedAt) >= cfg.ClaimIdle {
			if err := r.claim(ctx); err != nil {
				return err
			}
		}
		// With something to acknowledge, a read that does not wait: the acknowledgement goes
		// with it, and is answered now rather than when a wait for new entries ends. Only
		// with nothing left to acknowledge does a read wait, up to block.
		block := cfg.Block
		if len(r.unacked) > 0 {
			block = -1
		}
		entries, err := r.read(ctx, ">", block)
		if err != nil {
			return err
		}
		if err := r.pass(ctx, entries, false); err != nil {
			return err
		}
	}
}

// pending passes on this consumer's pending entries: delivered to it before (by an earlier
// Run, or process) and never acknowledged.
func (r *reader) pending(ctx context.Context) error {
	after := "0"
	for {
		entries, err := r.read(ctx, after, -1)
		if err != nil || len(entries) == 0 {
			return err
		}
		if err := r.pass(ctx, entries, true); err != nil {
			return err
		}
		after = entries[len(entries)-1].ID
	}
}

// read acknowledges what was passed on and reads up to Count entries of the group after the id
// after (">": new entries; an id: this consumer's pending entries after it), waiting up to
// block for one if block ≥ 0.
func (r *reader) read(ctx context.Context, after string, block time.Duration) ([]goredis.XMessage, error) {
	cfg := &r.s.cfg
	pipe := r.client.Pipeline()
	ack := r.queueAck(ctx, pipe)
	rd := pipe.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: cfg.Group, Consumer: cfg.Consumer, Streams: []string{cfg.Stream, after},
		Count: int64(cfg.Count), Block: block,
	})
	_, _ = pipe.Exec(ctx) // each command's error is its own
	if err := r.acked(ack); err != nil {
		return nil, err
	}
	streams, err := rd.Result()
	if errors.Is(err, goredis.Nil) { // nothing within block
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis-streams: read %q as %q of group %q: %w", cfg.Stream, cfg.Consumer, cfg.Group, err)
	}
	var entries []goredis.XMessage
	for _, st := range streams { // the one stream asked for
		entries = append(entries, st.Messages...)
	}
	r.s.received.Add(uint64(len(entries)))
	return entries, nil
}

// claim takes over, and passes on, the entries that other consumers of the group left pending
// and idle for claim_idle or longer (XAUTOCLAIM), a Count at a time.
func (r *reader) claim(ctx context.Context) error {
	cfg := &r.s.cfg
	r.claimedAt = time.Now()
	for start := "0-0"; ; {
		pipe := r.client.Pipeline()
		ack := r.queueAck(ctx, pipe)
		cl := pipe.XAutoClaimWithDeleted(ctx, &goredis.XAutoClaimArgs{
			Stream: cfg.Stream, Group: cfg.Group, Consumer: cfg.Consumer,
			MinIdle: cfg.ClaimIdle, Start: start, Count: int64(cfg.Count),
		})
		_, _ = pipe.Exec(ctx)
		if err := r.acked(ack); err != nil {
			return err
		}
		entries, next, deleted, err := cl.Result()
		if err != nil {
			return fmt.Errorf("redis-streams: claim idle entries of group %q: %w", cfg.Group, err)
		}
		// Redis 7 takes deleted entries off the pending list itself; 6.2 returns them as
		// entries without fields, which pass acknowledges.
		r.s.deleted.Add(uint64(len(deleted)))
		r.s.received.Add(uint64(len(entries)))
		r.s.claimed.Add(uint64(len(entries)))
		if err := r.pass(ctx, entries, true); err != nil {
			return err
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
}

// pass hands entries to emit, in order, and notes each one taken for acknowledgement. An entry
// deleted from the stream while pending has no fields and nothing to pass on: it is only
// acknowledged, to leave the pending list.
func (r *reader) pass(ctx context.Context, entries []goredis.XMessage, redelivered bool) error {
	now := time.Now()
	for _, e := range entries {
		if e.Values == nil {
			r.s.deleted.Add(1)
			r.unacked = append(r.unacked, e.ID)
			continue
		}
		m := r.s.shape.message(e, redelivered, now)
		r.s.tally.Passed(len(m.Body))
		if err := r.emit(ctx, m); err != nil {
			return errEmit
		}
		r.unacked = append(r.unacked, e.ID)
	}
	return nil
}

// queueAck adds to pipe the XACK of what was passed on, if anything was.
func (r *reader) queueAck(ctx context.Context, pipe goredis.Pipeliner) *goredis.IntCmd {
	if len(r.unacked) == 0 {
		return nil
	}
	return pipe.XAck(ctx, r.s.cfg.Stream, r.s.cfg.Group, r.unacked...)
}

// acked records the outcome of queueAck's XACK: on success nothing is left to acknowledge; on
// failure the ids stay for ackLeft.
func (r *reader) acked(ack *goredis.IntCmd) error {
	if ack == nil {
		return nil
	}
	n, err := ack.Result()
	if err != nil {
		return fmt.Errorf("redis-streams: acknowledge %d entries: %w", len(r.unacked), err)
	}
	r.s.acked.Add(uint64(n))
	r.unacked = r.unacked[:0]
	return nil
}

// ackLeft acknowledges, as a Run ends, what was passed on and not yet acknowledged: on the
// Run's connection if it is still up (connected: the run ended because the router took no
// more), else on a new one, within finalAckTimeout. What it cannot acknowledge stays pending,
// and is delivered again, with redis_stream_redelivered.
func (r *reader) ackLeft(ctx context.Context, connected bool) {
	if len(r.unacked) == 0 {
		return
	}
	cfg := &r.s.cfg
	if connected && ctx.Err() == nil {
		if n, err := r.client.XAck(ctx, cfg.Stream, cfg.Group, r.unacked...).Result(); err == nil {
			r.s.acked.Add(uint64(n))
			return
		}
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalAckTimeout)
	defer cancel()
	c := redis.RunClient(actx, r.s.opt)
	defer c.Close()
	n, err := c.XAck(actx, cfg.Stream, cfg.Group, r.unacked...).Result()
	if err != nil {
		r.s.ackFailures.Add(uint64(len(r.unacked)))
		return
	}
	r.s.acked.Add(uint64(n))
}
