package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/natstest"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// The benchmarks measure the log against two servers: "external", the nats-server on 4222
// (2.9 here; STREAMUX_TEST_NATS_URL), and "embedded", a nats-server/v2 of this build in the
// benchmark's process with file storage in a temporary directory, as streamux would run one
// to have the log on a single node without an external server. Each reports msgs/s.
//
//	go test -run XXX -bench . -benchtime 100000x ./internal/cluster

// body188 is a 188-byte JSON body, as DESIGN.md's measurements used.
var body188 = []byte(`{"order":"A-1042","customer":{"id":"c-77","tier":"gold"},"amount":120.5,"currency":"EUR","items":[{"sku":"X-1","qty":2},{"sku":"Y-9","qty":1}],"region":"eu","note":"deliver before noon"}`)

func benchMsg(i int) *stream.Message {
	return &stream.Message{Key: "k" + strconv.Itoa(i%100), Body: body188, BodyIsJSON: true, Time: time.Now(),
		Headers: map[string]string{"region": "eu"}}
}

// cpuTime is the CPU this process has used: with the embedded server, the client's and the
// server's; with the external one, the client's alone.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRate reports msgs/s and the process's CPU per message since cpu0.
func reportRate(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu_us/msg")
}

// embedded is the benchmarks' in-process server, started by the first that asks and shut
// down by TestMain.
var embedded struct {
	once sync.Once
	tc   *natstest.Cluster
	err  error
}

// target returns the URL of the server a benchmark runs against.
func target(b *testing.B, name string) string {
	if name == "external" {
		return sourcetest.RequireJetStream(b)
	}
	embedded.once.Do(func() { embedded.tc, embedded.err = natstest.New(1) })
	if embedded.err != nil {
		b.Fatal(embedded.err)
	}
	return embedded.tc.URL(0)
}

func BenchmarkAppend(b *testing.B) {
	for _, srv := range []string{"external", "embedded"} {
		for _, storage := range []string{"file", "memory"} {
			for _, batch := range []int{1, 100, 1000} {
				b.Run(fmt.Sprintf("%s/%s/batch=%d", srv, storage, batch), func(b *testing.B) {
					c := connect(b, target(b, srv), cluster.Config{Storage: storage})
					l := c.Log("bench")
					ensure(b, l)
					es := make([]cluster.Entry, batch)
					for i := range es {
						es[i] = cluster.Entry{Msg: benchMsg(i)}
					}
					ctx := context.Background()
					b.ResetTimer()
					cpu0 := cpuTime()
					for n := 0; n < b.N; n += batch {
						if _, err := l.Append(ctx, es[:min(batch, b.N-n)]); err != nil {
							b.Fatal(err)
						}
					}
					reportRate(b, cpu0)
				})
			}
		}
		b.Run(srv+"/file/parallel=4/batch=1000", func(b *testing.B) {
			// Four appenders at once (ingest requests of four clients): no pause between
			// batches while the last acks come back.
			c := connect(b, target(b, srv), cluster.Config{})
			l := c.Log("bench")
			ensure(b, l)
			es := make([]cluster.Entry, 1000)
			for i := range es {
				es[i] = cluster.Entry{Msg: benchMsg(i)}
			}
			ctx := context.Background()
			b.ResetTimer()
			cpu0 := cpuTime()
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for n := w * 1000; n < b.N; n += 4 * 1000 {
						if _, err := l.Append(ctx, es[:min(1000, b.N-n)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			reportRate(b, cpu0)
		})
		b.Run(srv+"/file/writer/batch=100", func(b *testing.B) {
			c := connect(b, target(b, srv), cluster.Config{})
			l := c.Log("bench")
			ensure(b, l)
			ctx := context.Background()
			w, err := l.Writer(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			es := make([]cluster.Entry, 100)
			for i := range es {
				es[i] = cluster.Entry{Msg: benchMsg(i)}
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for n := 0; n < b.N; n += 100 {
				if _, err := w.Append(ctx, es[:min(100, b.N-n)]); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b, cpu0)
		})
	}
}

func BenchmarkRead(b *testing.B) {
	for _, srv := range []string{"external", "embedded"} {
		for _, storage := range []string{"file", "memory"} {
			b.Run(srv+"/"+storage, func(b *testing.B) {
				c := connect(b, target(b, srv), cluster.Config{Storage: storage})
				l := c.Log("bench")
				info := ensure(b, l)
				ctx := context.Background()
				es := make([]cluster.Entry, 1000)
				for i := range es {
					es[i] = cluster.Entry{Msg: benchMsg(i)}
				}
				for n := 0; n < b.N; n += 1000 {
					if _, err := l.Append(ctx, es[:min(1000, b.N-n)]); err != nil {
						b.Fatal(err)
					}
				}
				r := l.Reader(1, info.Epoch, 0)
				defer r.Close()
				b.ResetTimer()
				cpu0 := cpuTime()
				got := 0
				err := r.Run(ctx, func(it cluster.Item) error {
					if it.Kind != cluster.KindMessage {
						return fmt.Errorf("item %v", it.Kind)
					}
					if got++; got == b.N {
						return errEnough
					}
					return nil
				})
				if err != errEnough {
					b.Fatal(err)
				}
				reportRate(b, cpu0)
			})
		}
	}
}

// BenchmarkHop measures one hop through the log at 10,000 msg/s: from just before Append to
// a Reader of another connection (another node) handing the message on. Eight ingest
// goroutines append one message each per call, as HTTP ingest of single messages would.
// It runs 3 s whatever b.N is; run it with -benchtime 1x.
func BenchmarkHop(b *testing.B) {
	for _, srv := range []string{"external", "embedded"} {
		b.Run(srv, func(b *testing.B) {
			url := target(b, srv)
			prefix := sourcetest.StreamPrefix()
			in := connect(b, url, cluster.Config{StreamPrefix: prefix})
			out := connect(b, url, cluster.Config{StreamPrefix: prefix})
			info := ensure(b, in.Log("hop"))
			const rate, seconds, writers = 10000, 3, 8
			total := rate * seconds
			ctx, cancel := context.WithTimeout(context.Background(), seconds*time.Second+10*time.Second)
			defer cancel()
			lat := make([]time.Duration, 0, total)
			var wg sync.WaitGroup
			wg.Go(func() {
				r := out.Log("hop").Reader(1, info.Epoch, 0)
				defer r.Close()
				_ = r.Run(ctx, func(it cluster.Item) error {
					lat = append(lat, time.Since(it.Msg.Time))
					if len(lat) == total {
						return errEnough
					}
					return nil
				})
			})
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Go(func() {
					l := in.Log("hop")
					per := total / writers
					for i := range per {
						due := start.Add(time.Duration(i*writers+w) * time.Second / rate)
						if d := time.Until(due); d > 0 {
							time.Sleep(d)
						}
						if _, err := l.Append(ctx, []cluster.Entry{{Msg: benchMsg(i)}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if len(lat) < total {
				b.Fatalf("read %d of %d", len(lat), total)
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50_ms")
			b.ReportMetric(q(0.99), "p99_ms")
			b.ReportMetric(q(1), "max_ms")
		})
	}
}

// BenchmarkLeaseTakeover measures, with the default lease_ttl (5s) and lease_poll (250ms),
// how long after a holder's last renewal another node leads when the holder vanishes (stops
// renewing, as when killed), and how long after a clean release. One of each per
// iteration; run it with -benchtime 3x or so.
func BenchmarkLeaseTakeover(b *testing.B) {
	url := sourcetest.RequireJetStream(b)
	var vanished, released []time.Duration
	for range b.N {
		prefix := sourcetest.StreamPrefix()
		a := connect(b, url, cluster.Config{StreamPrefix: prefix, Node: "a"})
		c := connect(b, url, cluster.Config{StreamPrefix: prefix, Node: "c"})
		ctx := context.Background()

		// Vanished: a acquires and never renews.
		la := a.Lease("src")
		if held, _, err := la.TryAcquire(ctx); !held || err != nil {
			b.Fatal(held, err)
		}
		last := time.Now()
		leads := make(chan time.Time, 1)
		cctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = c.Lease("src").Campaign(cctx, nil, nil, func(ctx context.Context) error {
				leads <- time.Now()
				<-ctx.Done()
				return nil
			})
		})
		vanished = append(vanished, (<-leads).Sub(last))

		// Released: a campaigns behind c, c stops cleanly, a takes over.
		actx, acancel := context.WithCancel(ctx)
		wg.Go(func() {
			_ = la.Campaign(actx, nil, nil, func(ctx context.Context) error {
				leads <- time.Now()
				<-ctx.Done()
				return nil
			})
		})
		time.Sleep(300 * time.Millisecond)
		stop := time.Now()
		cancel()
		released = append(released, (<-leads).Sub(stop))
		acancel()
		wg.Wait()
	}
	slices.Sort(vanished)
	slices.Sort(released)
	b.ReportMetric(float64(vanished[len(vanished)/2].Milliseconds()), "vanished_ms")
	b.ReportMetric(float64(released[len(released)/2].Milliseconds()), "released_ms")
	b.Logf("after a vanished holder's last renewal: %v; after a clean release: %v", vanished, released)
}
