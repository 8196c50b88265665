package amqp_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// benchBody is a typical 350-byte JSON event.
var benchBody = []byte(`{"id":"0f8e4c1a-8d3b-4c55-9a1e-2b7f3c9d0a11","type":"order.created","region":"eu",` +
	`"customer":{"id":48213,"tier":"gold","country":"DE"},"amount":120.5,"currency":"EUR",` +
	`"items":[{"sku":"A-1001","qty":2,"price":40.25},{"sku":"B-2002","qty":1,"price":40.0}],` +
	`"created_at":"2026-11-25T16:00:00.123Z","source":"checkout","version":3,"flags":["new","promo"]}`)

// benchRounds is how many times BenchmarkIngest alternates between the consumers, so that a
// change of load on the machine during the run weighs on each of them alike.
const benchRounds = 10

// BenchmarkIngest measures how fast messages leave a RabbitMQ queue through this Source (run by
// source.Runner with an Emit that only counts) and through bare amqp091-go consumers, on the same
// broker in the same run: b.N messages each, in benchRounds rounds that alternate between them.
// Each round preloads its messages into the queue first, outside the measurement, then times
// connecting, consuming and acknowledging them all. ns/op is the Source's time per message.
//
//	go test -run '^$' -bench BenchmarkIngest -benchtime 200000x ./internal/source/amqp/
//
// Metrics: source-msgs/s; bare-autoack-msgs/s (no acknowledgements at all: the broker's ceiling,
// but with an unbounded client buffer); bare-ack-msgs/s (prefetch 256, each message
// acknowledged: what a program with amqp091-go alone does); the Source as a percentage of each;
// and, for each, the CPU time this process spent per message (the client's own work, which on a
// machine shared with the broker also takes CPU from it).
func BenchmarkIngest(b *testing.B) {
	br := newBroker(b)
	queue := sourcetest.UniqueName(b)
	if err := br.do(func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.deleteQueue(queue) })
	pubCh, err := br.conn.Channel() // no confirms: preloading fast
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	consumers := []struct {
		name    string
		consume func(n int)
		elapsed time.Duration
		cpu     time.Duration // of this process: the client's work
	}{
		{name: "source", consume: func(n int) { sourceConsume(ctx, b, br.url, queue, n) }},
		{name: "bare-autoack", consume: func(n int) { bareConsume(ctx, b, br.url, queue, n, true) }},
		{name: "bare-ack", consume: func(n int) { bareConsume(ctx, b, br.url, queue, n, false) }},
	}
	b.StopTimer()
	rounds := min(benchRounds, b.N)
	for r := range rounds {
		n := b.N / rounds
		if r == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		for i := range consumers {
			c := &consumers[i]
			preload(ctx, b, br, pubCh, queue, n)
			if c.name == "source" {
				b.StartTimer()
			}
			start, cpu := time.Now(), cpuTime()
			c.consume(n)
			c.elapsed += time.Since(start)
			c.cpu += cpuTime() - cpu
			if c.name == "source" {
				b.StopTimer()
			}
		}
	}
	rate := func(d time.Duration) float64 { return float64(b.N) / d.Seconds() }
	for _, c := range consumers {
		b.ReportMetric(rate(c.elapsed), c.name+"-msgs/s")
		b.ReportMetric(float64(c.cpu.Nanoseconds())/float64(b.N), c.name+"-cpu-ns/msg")
	}
	b.ReportMetric(100*rate(consumers[0].elapsed)/rate(consumers[1].elapsed), "%-of-bare-autoack")
	b.ReportMetric(100*rate(consumers[0].elapsed)/rate(consumers[2].elapsed), "%-of-bare-ack")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// preload publishes n messages into queue and waits for the queue to hold them.
func preload(ctx context.Context, b *testing.B, br *broker, ch *amqp091.Channel, queue string, n int) {
	pub := amqp091.Publishing{
		ContentType: "application/json", Headers: amqp091.Table{"region": "eu", "tenant": "acme"}, Body: benchBody,
	}
	for range n {
		if err := ch.PublishWithContext(ctx, "", queue, false, false, pub); err != nil {
			b.Fatal(err)
		}
	}
	sourcetest.Eventually(b, 5*time.Minute, func() bool {
		got, err := br.readyMessages(queue)
		return err == nil && got == n
	}, "the queue to hold %d messages", n)
}

func sourceConsume(ctx context.Context, b *testing.B, url, queue string, n int) {
	src, err := amqp.New(amqp.Config{URL: url, Queue: queue})
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	emit := func(ctx context.Context, m *stream.Message) error {
		if got.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := source.NewRunner("bench", "amqp", src, sourcetest.TestBackoff, false, nil)
	stopped := make(chan struct{})
	// Waited for below.
	go func() { defer close(stopped); r.Run(ctx, emit, nil) }()
	select {
	case <-done:
	case <-ctx.Done():
		b.Errorf("consumed %d of %d", got.Load(), n)
	}
	cancel()
	<-stopped
}

// bareConsume is what a program with amqp091-go alone does: consume and count, acknowledging
// each message (unless autoAck) with the Source's default prefetch.
func bareConsume(ctx context.Context, b *testing.B, url, queue string, n int, autoAck bool) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Qos(amqp.DefaultPrefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", autoAck, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		select {
		case d := <-deliveries:
			if !autoAck {
				if err := d.Ack(false); err != nil {
					b.Fatal(err)
				}
			}
		case <-ctx.Done():
			b.Fatalf("consumed %d of %d", i, n)
		}
	}
}
