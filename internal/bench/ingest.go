package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/supervisor"
)

var ingestColumns = []column{colServer,
	{"messages", func(r Result) string { return commas(int64(r.Messages)) }},
	{"msgs/s", func(r Result) string { return num(r.MsgsPerSec) }},
	colOfBare,
	{"CPU µs/msg", func(r Result) string { return num(r.CPUPerDeliveryUs) }},
}

// ingest measures how fast messages leave a RabbitMQ queue through streamux (its amqp source,
// run by the supervisor into a router with no subscriptions, in this process) and through bare
// amqp091-go consumers, on the same broker in the same run. Each of Rounds rounds preloads
// Messages messages into the queue for each consumer in turn, then times connecting,
// consuming and acknowledging them all; alternating spreads any change of load on the machine
// over all of them alike.
func (r *runner) ingest(ctx context.Context, rep *Report) error {
	o := r.opt
	rep.columns = ingestColumns
	conn, err := amqp091.Dial(o.AMQPURL)
	if err != nil {
		return fmt.Errorf("amqp: %w (is RabbitMQ running at %s?)", err, o.AMQPURL)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: channel: %w", err)
	}
	queue := fmt.Sprintf("streamux-bench-%d", os.Getpid())
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declare queue: %w", err)
	}
	defer func() { _, _ = ch.QueueDelete(queue, false, false, false) }()
	body := []byte(`{"ts":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + strings.Repeat("x", max(o.Size-40, 0)) + `"}`)

	consumers := []struct {
		name    string
		consume func(n int) error
		elapsed time.Duration
		cpu     time.Duration
	}{
		{name: kindStreamux, consume: func(n int) error { return consumeStreamux(ctx, o.AMQPURL, queue, n) }},
		{name: "bare-ack", consume: func(n int) error { return consumeBare(ctx, o.AMQPURL, queue, n, false) }},
		{name: "bare-autoack", consume: func(n int) error { return consumeBare(ctx, o.AMQPURL, queue, n, true) }},
	}
	for round := 1; round <= o.Rounds; round++ {
		for i := range consumers {
			c := &consumers[i]
			r.prog.show("[ingest] round %d/%d: preloading %s messages for %s", round, o.Rounds, commas(int64(o.Messages)), c.name)
			if err := preload(ctx, ch, queue, body, o.Messages); err != nil {
				return err
			}
			r.prog.show("[ingest] round %d/%d: %s consuming", round, o.Rounds, c.name)
			cpu0, _, _ := procStat(0)
			start := time.Now()
			if err := c.consume(o.Messages); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.elapsed += time.Since(start)
			cpu1, _, _ := procStat(0)
			c.cpu += cpu1 - cpu0
		}
	}
	total := o.Messages * o.Rounds
	var bare float64
	for _, c := range consumers {
		res := Result{
			Server: c.name, Messages: total, MsgsPerSec: float64(total) / c.elapsed.Seconds(),
			CPUSeconds: c.cpu.Seconds(), CPUPerDeliveryUs: c.cpu.Seconds() * 1e6 / float64(total),
		}
		if c.name == "bare-ack" {
			bare = res.MsgsPerSec
		}
		rep.Results = append(rep.Results, res)
	}
	for i := range rep.Results {
		rep.Results[i].OfBare = 100 * rep.Results[i].MsgsPerSec / bare
	}
	rep.Summary = append(rep.Summary, fmt.Sprintf("streamux consumed %.0f%% of bare-ack's rate (target: at least 95%%)", rep.Results[0].OfBare))
	rep.Notes = append(rep.Notes,
		"bare-ack: amqp091-go alone, prefetch 256, each message acknowledged; bare-autoack: no acknowledgements at all (the broker's ceiling, unbounded client buffer)",
		"streamux: the amqp source with its defaults (prefetch 256, ack auto in batches) run by the supervisor into a router with no subscription; connecting is timed for every consumer",
		"CPU µs/msg is this process's CPU (the broker's is not counted) while consuming")
	return nil
}

// preload empties queue (of what an earlier consumer left unacknowledged), publishes n copies
// of body to it and waits until the queue holds them.
func preload(ctx context.Context, ch *amqp091.Channel, queue string, body []byte, n int) error {
	if _, err := ch.QueuePurge(queue, false); err != nil {
		return fmt.Errorf("amqp: purge: %w", err)
	}
	pub := amqp091.Publishing{ContentType: "application/json", Headers: amqp091.Table{"region": "eu"}, Body: body}
	for range n {
		if err := ch.PublishWithContext(ctx, "", queue, false, false, pub); err != nil {
			return fmt.Errorf("amqp: publish: %w", err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("amqp: inspect queue: %w", err)
		}
		if q.Messages >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("amqp: the queue holds %d of %d messages", q.Messages, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consumeStreamux runs streamux's amqp source under a supervisor, as the server does, until
// its router has received n messages.
func consumeStreamux(ctx context.Context, url, queue string, n int) error {
	durable := false
	src, err := amqp.New(amqp.Config{URL: url, Queue: queue, Durable: &durable})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sup, err := supervisor.New([]supervisor.Source{{
		Name: "bench", Type: "amqp", Adapter: src,
		Backoff: source.Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
	}}, supervisor.Options{Log: log})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sup.Run(sctx) }() // waited for below
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		si := sup.Sources()[0]
		if si.Counters.Received >= uint64(n) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("consumed %d of %d (source %s: %s)", si.Counters.Received, n, si.State, si.LastError)
		}
		time.Sleep(time.Millisecond)
	}
}

// consumeBare is what a program with amqp091-go alone does: consume and count, acknowledging
// each message (unless autoAck) with the amqp source's default prefetch.
func consumeBare(ctx context.Context, url, queue string, n int, autoAck bool) error {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if !autoAck {
		if err := ch.Qos(amqp.DefaultPrefetch, 0, false); err != nil {
			return err
		}
	}
	deliveries, err := ch.Consume(queue, "", autoAck, false, false, false, nil)
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
			if !autoAck {
				if err := d.Ack(false); err != nil {
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
