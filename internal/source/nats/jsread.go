package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// errRefused ends a reading whose router refused a message: it stopped, and what was read goes
// back to the server.
var errRefused = errors.New("the router refused a message")

// reading is one connection's reading of the consumer. nats.go's subscription goroutine calls
// handle for each message, one at a time, and handle emits it and acknowledges it: the one
// goroutine that emits while the reading lasts. Run's goroutine waits for the reading to end
// (ctx, cancelled with the cause) and then ends it (end), after which handle touches nothing.
// mu is held through each handle, so that end waits for the one under way.
type reading struct {
	src  *StreamSource
	emit source.Emit
	ctx  context.Context // cancelled at the end of the reading
	fail context.CancelCauseFunc
	// oldServer is a server that loses what is given back while the reading's pull requests
	// wait (serverLosesGiveBack): end gives back only once the server has forgotten them.
	oldServer bool

	mu   sync.Mutex
	over bool            // ended: what comes is left to ack_wait
	back []jetstream.Msg // read and not taken by the router, to give back
}

// handle passes m on, and acknowledges it once the router took it. Once the reading is ending,
// it keeps m to give back instead.
func (r *reading) handle(m jetstream.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.over:
		return
	case r.ctx.Err() != nil:
		r.back = append(r.back, m)
		return
	}
	msg, err := r.src.message(m)
	if err != nil {
		r.fail(err)
		return
	}
	size := len(msg.Body) // msg is the router's once emitted
	if err := r.emit(r.ctx, msg); err != nil {
		// The router did not take msg: the reading is ending, or the router stopped. It,
		// and what comes after it, go back.
		r.back = append(r.back, m)
		r.fail(errRefused) // nothing if the reading is ending already
		return
	}
	r.src.tally.Passed(size)
	if err := m.Ack(); err != nil {
		r.fail(fmt.Errorf("acknowledge: %w", err))
		return
	}
	r.src.acked.Add(1)
}

// consumeError is told nats.go's errors of the reading: the consumer deleted, or a request it
// refused, end it; the others (missing heartbeats, a new consumer leader) nats.go recovers from
// by pulling again, and a dead connection is the pings' to find.
func (r *reading) consumeError(_ jetstream.ConsumeContext, err error) {
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrBadRequest) {
		r.fail(fmt.Errorf("consumer %q: %w", r.src.name, err))
	}
}

// end ends the reading, r.ctx being done. While the connection lives, it gives back, in order,
// what the router did not take: the message it refused, if any, and every message read ahead
// of it, negatively acknowledged so that the server delivers them again at once to the next
// reader, before what it has not delivered yet. Left to ack_wait, they would come back late,
// after newer messages, holding max_ack_pending until then. Reading stops first (Drain): the
// server would deliver what is given back to the pull requests still waiting, which no one
// would read.
func (r *reading) end(c *conn, cc jetstream.ConsumeContext) {
	live := !c.nc.IsClosed()
	if live {
		// Drain unsubscribes and hands handle what came before the server confirmed it.
		cc.Drain()
		wait := time.NewTimer(giveBackWait)
		select {
		case <-cc.Closed():
		case <-wait.C:
		}
		wait.Stop()
	}
	r.mu.Lock()
	r.over = true
	back := r.back
	r.back = nil
	r.mu.Unlock()
	cc.Stop()
	if !live || len(back) == 0 {
		return
	}
	if r.oldServer {
		// The server drops the pull requests of a reader that has gone at its next look
		// at them, at the latest when their heartbeat is due (staleAfter).
		wait := time.NewTimer(staleAfter + staleAfter/2)
		<-wait.C
	}
	for _, m := range back {
		if m.Nak() == nil {
			r.src.nacked.Add(1)
		}
	}
	_ = c.nc.FlushTimeout(giveBackWait)
}

// message turns m into a message for the router, and counts it.
func (s *StreamSource) message(m jetstream.Msg) (*stream.Message, error) {
	delivered, seq, ok := parseAck(m.Reply())
	if !ok {
		return nil, fmt.Errorf("a message without its JetStream place: reply subject %q", m.Reply())
	}
	s.received.Add(1)
	if delivered > 1 {
		s.redelivered.Add(1)
	}
	// The stream and its sequence name the message upstream: in a cluster, a message
	// delivered again is not appended to the log again. The sequence's header is a part of
	// that string, not a string of its own.
	var buf [64]byte
	upstreamID := string(strconv.AppendUint(append(append(buf[:0], s.cfg.Stream...), ':'), seq, 10))
	h := headerMap(m.Headers(), 3)
	h[StreamHeader] = s.cfg.Stream
	h[SeqHeader] = upstreamID[len(s.cfg.Stream)+1:]
	h[DeliveredHeader] = strconv.FormatUint(delivered, 10)
	// The body is this message's own, as for core NATS (Source.emit): nats.go copied it out
	// of its read buffer.
	return &stream.Message{Key: m.Subject(), Headers: h, Body: m.Data(), Time: time.Now(), UpstreamID: upstreamID}, nil
}
