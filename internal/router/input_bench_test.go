package router

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

// BenchmarkEmit measures handing messages to a running router and having them routed (no
// subscriptions: the history and the encoding only), from one producer and from several at
// once, as concurrent ingest requests do.
func BenchmarkEmit(b *testing.B) {
	for _, producers := range []int{1, 4} {
		b.Run(fmt.Sprintf("producers/%d", producers), func(b *testing.B) {
			r := New("src", History{Size: 1024}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); r.Run(ctx) }() // waited for below
			defer func() { cancel(); <-done }()
			// Each producer cycles through its own messages; the router rewrites Seq and
			// Source, which no producer reads.
			msgs := make([][]*stream.Message, producers)
			for p := range msgs {
				msgs[p] = make([]*stream.Message, 64)
				for i := range msgs[p] {
					msgs[p][i] = message("k", i)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := range producers {
				n := b.N / producers
				if p == 0 {
					n += b.N % producers
				}
				wg.Go(func() {
					for i := range n {
						if err := r.Emit(ctx, msgs[p][i%64]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if _, err := r.History(ctx); err != nil { // everything emitted is routed
				b.Fatal(err)
			}
		})
	}
}
