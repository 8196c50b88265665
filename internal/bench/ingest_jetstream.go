package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/supervisor"
)

func init() { registerIngest("jetstream", (*runner).ingestJetStream) }

// jsBenchConsumer is the durable consumer every round reads through, made anew, the same way,
// before each: what the jetstream source makes with its defaults and start: all.
const jsBenchConsumer = "streamux-bench"

// ingestJetStream measures how fast messages leave a JetStream stream through streamux (its
// jetstream source, run by the supervisor into a router with no subscriptions, in this process)
// and through a bare nats.go jetstream consumer with the same consumer, pull size and
// acknowledgements (each message acknowledged once handled), on the same server in the same
// run. Each of Rounds rounds preloads Messages messages into the stream for each consumer in
// turn, then times connecting, consuming and acknowledging them all.
func (r *runner) ingestJetStream(ctx context.Context, rep *Report) error {
	o := r.opt
	rep.columns = ingestColumns
	nc, err := natsgo.Connect(o.NATSURL, natsgo.Name("streamux-bench"))
	if err != nil {
		return fmt.Errorf("jetstream: %w (is nats-server -js running at %s?)", err, redactURL(o.NATSURL))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	name := fmt.Sprintf("streamux-bench-%d", os.Getpid())
	subject := "streamux-bench." + strconv.Itoa(os.Getpid())
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject + ".>"}, Storage: jetstream.FileStorage})
	cancel()
	if err != nil {
		return fmt.Errorf("jetstream: create stream %s: %w", name, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, name)
	}()
	body := []byte(`{"ts":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + strings.Repeat("x", max(o.Size-40, 0)) + `"}`)

	n := o.Messages
	err = r.ingestRounds(rep, "", func(int, string) error { return preloadStream(ctx, js, st, subject, body, n) }, nil, []ingestConsumer{
		{kindStreamux, func() error { return consumeStreamuxJetStream(ctx, o.NATSURL, name, n) }},
		{"bare-ack", func() error { return consumeBareJetStream(ctx, o.NATSURL, name, n) }},
	})
	if err != nil {
		return err
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("one file-storage stream on %s; before each consumer's turn, the stream is purged, %s messages of %d bytes are stored, and the durable consumer %q is made anew (deliver all, explicit acks, max_ack_pending %d)",
			redactURL(o.NATSURL), commas(int64(o.Messages)), len(body), jsBenchConsumer, nats.DefaultMaxAckPending),
		"bare-ack: nats.go's jetstream Consume alone, pulling as streamux does, each message acknowledged in the handler",
		"streamux: the jetstream source with its defaults, run by the supervisor into a router with no subscription, each message acknowledged once the router took it; connecting is timed for both",
		"CPU µs/msg is this process's CPU (the server's is not counted) while consuming")
	return nil
}

// preloadStream empties the stream, stores n copies of body on subjects under subject, and
// makes the bench's consumer anew, to read them all.
func preloadStream(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, subject string, body []byte, n int) error {
	if err := st.Purge(ctx); err != nil {
		return fmt.Errorf("jetstream: purge: %w", err)
	}
	if err := st.DeleteConsumer(ctx, jsBenchConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("jetstream: delete consumer: %w", err)
	}
	// In chunks, each waited for: nats.go refuses more than 4,000 unacknowledged at once.
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		for j := i; j < min(i+chunk, n); j++ {
			m := natsgo.NewMsg(subject + ".k" + strconv.Itoa(j%100))
			m.Data = body
			m.Header.Set("region", "eu")
			if _, err := js.PublishMsgAsync(m); err != nil {
				return fmt.Errorf("jetstream: publish: %w", err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			return fmt.Errorf("jetstream: %d publications unacknowledged after 1m", js.PublishAsyncPending())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := st.CreateConsumer(cctx, jetstream.ConsumerConfig{
		Durable: jsBenchConsumer, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: nats.DefaultAckWait, MaxAckPending: nats.DefaultMaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("jetstream: create consumer: %w", err)
	}
	info, err := st.Info(cctx)
	if err != nil {
		return fmt.Errorf("jetstream: stream info: %w", err)
	}
	if info.State.Msgs != uint64(n) {
		return fmt.Errorf("jetstream: the stream holds %d of %d messages", info.State.Msgs, n)
	}
	return nil
}

// consumeStreamuxJetStream runs streamux's jetstream source on the bench's consumer under a
// supervisor, as the server does, until its router has received n messages.
func consumeStreamuxJetStream(ctx context.Context, url, stream string, n int) error {
	src, err := nats.NewStream(nats.StreamConfig{Conn: nats.Conn{URL: url}, JetStream: nats.JetStream{Stream: stream, Consumer: jsBenchConsumer}})
	if err != nil {
		return err
	}
	return superviseUntil(ctx, "jetstream", src, n, supervisor.Options{}, nil)
}

// consumeBareJetStream is what a program with nats.go's jetstream package alone does: consume
// the bench's consumer, pulling as the jetstream source does, and acknowledge each message.
func consumeBareJetStream(ctx context.Context, url, stream string, n int) error {
	nc, err := natsgo.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cons, err := js.Consumer(cctx, stream, jsBenchConsumer)
	cancel()
	if err != nil {
		return err
	}
	var got atomic.Int64
	done := make(chan struct{})
	var ackErr atomic.Pointer[error]
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err != nil {
			ackErr.CompareAndSwap(nil, &err)
		}
		if got.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(nats.StreamPullSize(nats.DefaultMaxAckPending)))
	if err != nil {
		return err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("consumed %d of %d", got.Load(), n)
	case <-ctx.Done():
		return ctx.Err()
	}
	if p := ackErr.Load(); p != nil {
		return fmt.Errorf("acknowledge: %w", *p)
	}
	return nil
}
