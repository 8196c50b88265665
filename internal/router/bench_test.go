package router

import (
	"fmt"
	"testing"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/stream"
)

// table fills a router, owned by the calling goroutine, with n subscriptions whose predicates
// come from pred(i); their queues are large enough for every benchmark round.
func filled(tb testing.TB, n int, pred func(i int) string) (*Router, []*output.Output) {
	r := New("src", History{Size: 1024}, nil)
	outs := make([]*output.Output, n)
	cache := map[string]*predicate.Predicate{}
	for i := range outs {
		src := pred(i)
		p, ok := cache[src]
		if !ok {
			p = mustCompile(tb, src)
			cache[src] = p
		}
		outs[i] = output.New(uint64(i+1), output.Drop, output.Limits{Events: 4096, Bytes: 1 << 30})
		r.add(outs[i], p)
	}
	return r, outs
}

// empty discards what the outputs queued, without counting it as the router's work.
func empty(outs []*output.Output) {
	for _, o := range outs {
		for o.Depth() > 0 {
			recv(o)
		}
	}
}

func benchmarkRoute(b *testing.B, n int, pred func(i int) string, msg func(i int) *stream.Message) {
	r, outs := filled(b, n, pred)
	msgs := make([]*stream.Message, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(msgs)
		if j == 0 {
			b.StopTimer()
			empty(outs)
			for k := range msgs {
				msgs[k] = msg(k)
			}
			b.StartTimer()
		}
		r.route(msgs[j])
	}
	b.StopTimer()
	empty(outs)
}

// BenchmarkRoute_N: N subscriptions; "key" predicates are key == "kI" over 100 keys (1% of the
// subscriptions match each message); "body" predicates have three clauses over the body;
// "bodyeq" predicates are body.user == "uI" over 1,000 users (0.1% match each message), and
// "bodyeq-missing" routes messages without a user to them: each predicate then fails, and the
// router counts every failure, as evaluation would.
func BenchmarkRoute(b *testing.B) {
	keyPred := func(i int) string { return fmt.Sprintf(`key == "k%d"`, i%100) }
	bodyPred := func(i int) string {
		return fmt.Sprintf(`body.n %% 100 == %d && body.amount > 50 && body.tier == "gold"`, i%100)
	}
	userPred := func(i int) string { return fmt.Sprintf(`body.user == "u%d"`, i%1000) }
	keyMsg := func(i int) *stream.Message { return message(fmt.Sprintf("k%d", i%100), i) }
	userMsg := func(i int) *stream.Message {
		m := message(fmt.Sprintf("k%d", i%100), i)
		m.Body = fmt.Appendf(nil, `{"user":"u%d","n":%d,"amount":%d.5,"tier":"gold"}`, i*7%1000, i, i%200)
		return m
	}
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("key/%d", n), func(b *testing.B) { benchmarkRoute(b, n, keyPred, keyMsg) })
		b.Run(fmt.Sprintf("body/%d", n), func(b *testing.B) { benchmarkRoute(b, n, bodyPred, keyMsg) })
		b.Run(fmt.Sprintf("bodyeq/%d", n), func(b *testing.B) { benchmarkRoute(b, n, userPred, userMsg) })
		b.Run(fmt.Sprintf("bodyeq-missing/%d", n), func(b *testing.B) { benchmarkRoute(b, n, userPred, keyMsg) })
	}
}
