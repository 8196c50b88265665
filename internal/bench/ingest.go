package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
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

	n := o.Messages
	err = r.ingestRounds(rep, "", func(int, string) error { return preload(ctx, ch, queue, body, n) }, nil, []ingestConsumer{
		{kindStreamux, func() error { return consumeStreamux(ctx, o.AMQPURL, queue, n) }},
		{"bare-ack", func() error { return consumeBare(ctx, o.AMQPURL, queue, n, false) }},
		{"bare-autoack", func() error { return consumeBare(ctx, o.AMQPURL, queue, n, true) }},
	})
	if err != nil {
		return err
	}
	rep.Notes = append(rep.Notes,
		"bare-ack: amqp091-go alone, prefetch 256, each message acknowledged; bare-autoack: no acknowledgements at all (the broker's ceiling, unbounded client buffer)",
		"streamux: the amqp source with its defaults (prefetch 256, ack auto in batches) run by the supervisor into a router with no subscription; connecting is timed for every consumer",
		"CPU µs/msg is this process's CPU (the broker's is not counted) while consuming")
	return nil
}

// ingestConsumer is one of the consumers an ingest scenario compares: its name in the report,
// and how it consumes the messages of its turn in a round, which is what is timed.
type ingestConsumer struct {
	name    string
	consume func() error
}

// ingestRounds runs an ingest scenario's rounds: each of Rounds rounds (counted from 1) gives
// every consumer a turn, in order, so that any change of load on the machine falls on all of
// them alike. A turn is load(round, name), untimed (it puts the turn's messages where the
// consumer reads them), then the consumer's consume, timed with this process's CPU, then
// check(round, name), untimed, if check is not nil (it verifies what the turn left, or cleans
// up). ingestRounds appends a Result for each consumer, its rate also as a share of the one
// named "bare-ack", which must be among them, and a summary line of the first one's share
// (streamux's), of messages from where ("" to say nothing). With CPUProfile set, it writes
// there one CPU profile of this process over all the rounds, each consumer's turns labelled
// consumer=NAME (go tool pprof -tagfocus consumer=streamux).
func (r *runner) ingestRounds(rep *Report, where string, load, check func(round int, name string) error, consumers []ingestConsumer) error {
	o := r.opt
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	elapsed := make([]time.Duration, len(consumers))
	cpu := make([]time.Duration, len(consumers))
	for round := 1; round <= o.Rounds; round++ {
		for i, c := range consumers {
			r.prog.show("[ingest] round %d/%d: preloading %s messages for %s", round, o.Rounds, commas(int64(o.Messages)), c.name)
			if err := load(round, c.name); err != nil {
				return err
			}
			r.prog.show("[ingest] round %d/%d: %s consuming", round, o.Rounds, c.name)
			cpu0, _, _ := procStat(0)
			start := time.Now()
			var err error
			// The goroutines that consume starts take its label too.
			pprof.Do(context.Background(), pprof.Labels("consumer", c.name), func(context.Context) { err = c.consume() })
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			elapsed[i] += time.Since(start)
			cpu1, _, _ := procStat(0)
			cpu[i] += cpu1 - cpu0
			if check != nil {
				if err := check(round, c.name); err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
			}
		}
	}
	total := o.Messages * o.Rounds
	first := len(rep.Results)
	var bare float64
	for i, c := range consumers {
		res := Result{
			Server: c.name, Messages: total, MsgsPerSec: float64(total) / elapsed[i].Seconds(),
			CPUSeconds: cpu[i].Seconds(), CPUPerDeliveryUs: cpu[i].Seconds() * 1e6 / float64(total),
		}
		if c.name == "bare-ack" {
			bare = res.MsgsPerSec
		}
		rep.Results = append(rep.Results, res)
	}
	for i := first; i < len(rep.Results); i++ {
		rep.Results[i].OfBare = 100 * rep.Results[i].MsgsPerSec / bare
	}
	if where != "" {
		where = " " + where
	}
	rep.Summary = append(rep.Summary, fmt.Sprintf("streamux consumed %.0f%% of bare-ack's rate%s (target: at least 95%%)", rep.Results[first].OfBare, where))
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
	return superviseUntil(ctx, "amqp", src, n, supervisor.Options{}, nil)
}

// superviseUntil runs adapter, of source type typ, under a supervisor with opt (its Log
// discarded), as the server does, into a router with no subscriptions, until count (nil: what
// the router received) reaches n, or five minutes pass.
func superviseUntil(ctx context.Context, typ string, adapter source.Source, n int, opt supervisor.Options, count func() uint64) error {
	opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	sup, err := supervisor.New([]supervisor.Source{{
		Name: "bench", Type: typ, Adapter: adapter,
		Backoff: source.Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
	}}, opt)
	if err != nil {
		return err
	}
	if count == nil {
		count = func() uint64 { return sup.Sources()[0].Counters.Received }
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sup.Run(sctx) }() // waited for below
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got := count()
		if got >= uint64(n) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			si := sup.Sources()[0]
			return fmt.Errorf("consumed %d of %d (source %s: %s)", got, n, si.State, si.LastError)
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
