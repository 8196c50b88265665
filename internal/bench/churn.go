package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

var churnColumns = []column{colServer, colPhase,
	{"cycles", func(r Result) string { return commas(int64(r.Cycles)) }},
	{"cycles/s", func(r Result) string { return num(r.CyclesPerSec) }},
	{"goroutines", func(r Result) string { return commas(int64(r.GoroutinesAfter)) }},
	{"heap in use", func(r Result) string { return bytesText(r.HeapAfter) }},
	{"live heap", func(r Result) string { return bytesText(r.LiveHeapAfter) }},
	colRSS,
}

// churn connects and closes Cycles clients, Clients at a time, while messages flow (at Rate),
// and compares the server's goroutines, heap in use and live heap (from its /metrics:
// go_goroutines, go_memstats_heap_inuse_bytes, go_memstats_heap_alloc_bytes) before and after.
// Half the clients read everything and half one key; every fourth one leaves without a close
// frame, as a client that crashed would.
func (r *runner) churn(ctx context.Context, rep *Report) error {
	rep.columns = churnColumns
	return r.withServer(ctx, kindStreamux, func(t *target) error {
		o := r.opt
		rec := newRecorder()
		fanTo := make([]uint64, o.Keys)
		// Fill the history first (10,000 messages by default), so that its growth during
		// the churn is not taken for a leak.
		if err := prefill(ctx, t, o.Keys, o.Size, 10000); err != nil {
			return err
		}
		var stopPub func() error
		if o.Rate > 0 {
			var err error
			if _, stopPub, err = r.startPublisher(ctx, t, rec, fanTo, o.Rate); err != nil {
				return err
			}
			defer stopPub()
		}
		snap := func(phase string) (Result, error) {
			if err := r.sleep(ctx, time.Second, nil); err != nil {
				return Result{}, err
			}
			t.gc(ctx)
			rs, err := t.runtimeStats(ctx)
			if err != nil {
				return Result{}, err
			}
			_, rss, _ := t.usage(ctx)
			if o.HeapProfile != "" {
				if err := t.heapProfile(ctx, o.HeapProfile+"."+phase); err != nil {
					return Result{}, fmt.Errorf("heap profile: %w", err)
				}
			}
			return Result{Server: t.kind, Phase: phase, GoroutinesAfter: rs.Goroutines, HeapAfter: rs.HeapInuse, LiveHeapAfter: rs.HeapLive, RSSBytes: rss}, nil
		}
		var next, done, failed atomic.Int64
		var firstErr atomic.Pointer[error]
		cycle := func(i int64) {
			where := ""
			if i%2 == 1 {
				where = fmt.Sprintf(`key == "k%d"`, i%int64(o.Keys))
			}
			conn, _, err := dial(ctx, t.base, where, t.source, o.Policy, dialOptions{})
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			if i%4 != 3 {
				_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
				_ = ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			}
			conn.Close()
		}
		// A few cycles first, so that what the first subscriptions build once (the CEL
		// parser's tables, pools) is in the baseline.
		for i := range int64(8) {
			cycle(i)
		}
		before, err := snap("before")
		if err != nil {
			return err
		}
		start := time.Now()
		var wg sync.WaitGroup
		for range o.Clients {
			wg.Add(1)
			go func() { // one churning worker; waited for below
				defer wg.Done()
				for ctx.Err() == nil {
					i := next.Add(1) - 1
					if i >= int64(o.Cycles) {
						return
					}
					cycle(i)
					done.Add(1)
				}
			}()
		}
		stopShow := make(chan struct{})
		showDone := make(chan struct{})
		go func() { // the progress line; waited for below
			defer close(showDone)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stopShow:
					return
				case <-tick.C:
					n := done.Load()
					r.prog.show("[streamux churn] %s/%s cycles  %s/s  failed %d", commas(n), commas(int64(o.Cycles)),
						num(float64(n)/time.Since(start).Seconds()), failed.Load())
				}
			}
		}()
		wg.Wait()
		close(stopShow)
		<-showDone
		elapsed := time.Since(start)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f := failed.Load(); f > int64(o.Cycles)/100 {
			return fmt.Errorf("churn: %d of %d connections failed; the first: %v", f, o.Cycles, *firstErr.Load())
		}
		// The server ends each stream when it notices the close; wait until none is left.
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			m, err := scrape(ctx, t.httpc, t.base+"/metrics", "streamux_subscriptions")
			if err == nil && m["streamux_subscriptions"] == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		after, err := snap("after")
		if err != nil {
			return err
		}
		after.Cycles = int(done.Load())
		after.CyclesPerSec = float64(after.Cycles) / elapsed.Seconds()
		rep.Results = append(rep.Results, before, after)
		rep.Summary = append(rep.Summary,
			fmt.Sprintf("goroutines: %s before, %s after (%+d)", commas(int64(before.GoroutinesAfter)), commas(int64(after.GoroutinesAfter)),
				int64(after.GoroutinesAfter-before.GoroutinesAfter)),
			fmt.Sprintf("heap in use: %s before, %s after (%+.1f%%)", bytesText(before.HeapAfter), bytesText(after.HeapAfter),
				100*(after.HeapAfter-before.HeapAfter)/before.HeapAfter),
			fmt.Sprintf("live heap: %s before, %s after (%+.1f%%)", bytesText(before.LiveHeapAfter), bytesText(after.LiveHeapAfter),
				100*(after.LiveHeapAfter-before.LiveHeapAfter)/before.LiveHeapAfter),
			"target: goroutines and heap back to baseline")
		if f := failed.Load(); f > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d connections failed; the first: %v", f, *firstErr.Load()))
		}
		rep.Notes = append(rep.Notes, "each snapshot follows a forced GC (none at -url); 10,000 messages filled the history first, then messages kept flowing at -rate throughout")
		return nil
	})
}

// prefill publishes n messages with bodies of size bytes to t at once.
func prefill(ctx context.Context, t *target, keys, size, n int) error {
	s := newHTTPSink(t.base, t.source)
	defer s.close()
	body := []byte(`{"ts":1000000000000000000,"seq":0,"pad":"` + strings.Repeat("x", max(size-40, 0)) + `"}`)
	batch := make([]outMsg, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, outMsg{key: i % keys, body: body})
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.send(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}
