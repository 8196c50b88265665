package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/supervisor"
)

func init() {
	registerIngest("amqp-stream", func(r *runner, ctx context.Context, rep *Report) error {
		return r.ingestAMQPQueue(ctx, rep, amqp.QueueStream)
	})
	registerIngest("amqp-quorum", func(r *runner, ctx context.Context, rep *Report) error {
		return r.ingestAMQPQueue(ctx, rep, amqp.QueueQuorum)
	})
}

// ingestAMQPQueue measures, as ingest does for a classic queue, how fast messages leave a
// RabbitMQ stream or quorum queue through streamux (its amqp source, with queue_type set, run by
// the supervisor with a data directory into a router with no subscriptions, in this process) and
// through a bare amqp091-go consumer with the same prefetch, each message acknowledged, on the
// same broker in the same run. Each of Rounds rounds preloads Messages messages for each
// consumer in turn (into a new stream, or the purged quorum queue), then times connecting,
// consuming and acknowledging them all.
func (r *runner) ingestAMQPQueue(ctx context.Context, rep *Report, queueType string) error {
	o := r.opt
	rep.columns = ingestColumns
	conn, err := amqp091.Dial(o.AMQPURL)
	if err != nil {
		return fmt.Errorf("amqp: %w (is RabbitMQ running at %s?)", err, redactURL(o.AMQPURL))
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("amqp: confirm mode: %w", err)
	}
	dataDir, err := os.MkdirTemp("", "streamux-bench-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	body := []byte(`{"ts":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + strings.Repeat("x", max(o.Size-40, 0)) + `"}`)
	prefix := fmt.Sprintf("streamux-bench-%s-%d", queueType, os.Getpid())

	// declare makes the queue a consumer reads in one round: a new stream each time (a stream
	// is not drained by reading it), the one quorum queue purged.
	var queues []string
	defer func() {
		for _, q := range queues {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
	}()
	declare := func(name string) error {
		if _, err := ch.QueueDeclare(name, true, false, false, false, amqp091.Table{"x-queue-type": queueType}); err != nil {
			return fmt.Errorf("amqp: declare %s queue %s: %w", queueType, name, err)
		}
		queues = append(queues, name)
		return nil
	}
	if queueType == amqp.QueueQuorum {
		if err := declare(prefix); err != nil {
			return err
		}
	}

	// load readies the queue of a consumer's turn: a new stream, or the quorum queue purged.
	queue, n := prefix, o.Messages
	load := func(round int, name string) error {
		if queueType == amqp.QueueStream {
			queue = fmt.Sprintf("%s-%d-%s", prefix, round, name)
			if err := declare(queue); err != nil {
				return err
			}
		} else if _, err := ch.QueuePurge(queue, false); err != nil {
			return fmt.Errorf("amqp: purge: %w", err)
		}
		return preloadConfirmed(ctx, ch, queue, body, n)
	}
	var drop func(int, string) error
	if queueType == amqp.QueueStream {
		drop = func(int, string) error {
			if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
				return fmt.Errorf("amqp: delete %s: %w", queue, err)
			}
			queues = queues[:len(queues)-1]
			return nil
		}
	}
	err = r.ingestRounds(rep, "from a "+queueType+" queue", load, drop, []ingestConsumer{
		{kindStreamux, func() error { return consumeStreamuxQueue(ctx, o.AMQPURL, queue, queueType, dataDir, n) }},
		{"bare-ack", func() error { return consumeBareQueue(ctx, o.AMQPURL, queue, queueType, n, 1) }},
		{"bare-batch", func() error {
			return consumeBareQueue(ctx, o.AMQPURL, queue, queueType, n, benchPrefetch(queueType)/4)
		}},
	})
	if err != nil {
		return err
	}
	switch queueType {
	case amqp.QueueStream:
		rep.Notes = append(rep.Notes,
			fmt.Sprintf("a new stream for each consumer's turn on %s, %s messages of %d bytes stored in it (publisher confirms) before it is read from offset first", redactURL(o.AMQPURL), commas(int64(o.Messages)), len(body)),
			fmt.Sprintf("bare-ack: amqp091-go alone, prefetch %d, x-stream-offset first, each message acknowledged; it keeps no place in the stream", amqp.DefaultStreamPrefetch),
			fmt.Sprintf("streamux: the amqp source with queue_type stream, offset first and its defaults (prefetch %d, ack after_route), run by the supervisor with a data directory into a router with no subscription, recording its place on disk (synced) as it goes, never more than the prefetch behind; connecting is timed for both", amqp.DefaultStreamPrefetch))
	default:
		rep.Notes = append(rep.Notes,
			fmt.Sprintf("one quorum queue on %s, purged and loaded with %s messages of %d bytes (publisher confirms) before each consumer's turn", redactURL(o.AMQPURL), commas(int64(o.Messages)), len(body)),
			fmt.Sprintf("bare-ack: amqp091-go alone, prefetch %d, each message acknowledged", amqp.DefaultPrefetch),
			"streamux: the amqp source with queue_type quorum, ack after_route and its other defaults (prefetch 256, acknowledgements in batches), run by the supervisor into a router with no subscription; connecting is timed for both")
	}
	rep.Notes = append(rep.Notes,
		"bare-batch: bare-ack acknowledging as streamux does, every prefetch/4 messages at once (multiple), for comparison; the target is against bare-ack",
		"CPU µs/msg is this process's CPU (the broker's is not counted) while consuming")
	return nil
}

// preloadConfirmed publishes n copies of body to queue through the default exchange and waits
// for the broker's confirms (a stream's depth cannot be read with a passive declaration), in
// chunks so that the unconfirmed stay few.
func preloadConfirmed(ctx context.Context, ch *amqp091.Channel, queue string, body []byte, n int) error {
	pub := amqp091.Publishing{ContentType: "application/json", Headers: amqp091.Table{"region": "eu"}, Body: body}
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		var last *amqp091.DeferredConfirmation
		for range min(chunk, n-i) {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, pub)
			if err != nil {
				return fmt.Errorf("amqp: publish: %w", err)
			}
			last = dc
		}
		// Confirms come in order: the last one's covers the chunk.
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		ok, err := last.WaitContext(wctx)
		cancel()
		if err != nil {
			return fmt.Errorf("amqp: wait for confirms: %w", err)
		}
		if !ok {
			return fmt.Errorf("amqp: the broker refused a message")
		}
	}
	return nil
}

// consumeStreamuxQueue runs streamux's amqp source on a stream (from offset first) or quorum
// queue (ack after_route) under a supervisor with a data directory, as the server does, until
// its router has received n messages.
func consumeStreamuxQueue(ctx context.Context, url, queue, queueType, dataDir string, n int) error {
	c := amqp.Config{URL: url, Queue: queue, QueueType: queueType, Ack: amqp.AckAfterRoute}
	if queueType == amqp.QueueStream {
		c.Offset = amqp.OffsetFirst
	}
	src, err := amqp.New(c)
	if err != nil {
		return err
	}
	data, err := sequence.Open(dataDir)
	if err != nil {
		return err
	}
	defer data.Close()
	return superviseUntil(ctx, "amqp", src, n, supervisor.Options{Data: data}, nil)
}

// benchPrefetch is the amqp source's default prefetch for queueType, which the bare consumer
// uses too.
func benchPrefetch(queueType string) int {
	if queueType == amqp.QueueStream {
		return amqp.DefaultStreamPrefetch
	}
	return amqp.DefaultPrefetch
}

// consumeBareQueue is what a program with amqp091-go alone does on a stream or quorum queue:
// consume (a stream from its first message) with the amqp source's default prefetch, and
// acknowledge each message, or every batch messages at once.
func consumeBareQueue(ctx context.Context, url, queue, queueType string, n, batch int) error {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(benchPrefetch(queueType), 0, false); err != nil {
		return err
	}
	var args amqp091.Table
	if queueType == amqp.QueueStream {
		args = amqp091.Table{"x-stream-offset": amqp.OffsetFirst}
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, args)
	if err != nil {
		return err
	}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for i := 0; i < n; i++ {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("consumed %d of %d: the channel closed", i, n)
			}
			if (i+1)%batch == 0 || i == n-1 {
				if err := d.Ack(batch > 1); err != nil {
					return err
				}
			}
		case <-timeout.C:
			return fmt.Errorf("consumed %d of %d", i, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
