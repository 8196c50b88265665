package bench

import (
	"context"
	"fmt"
	"time"
)

var idleColumns = []column{colServer, colClients, colRSS, colRSSConn,
	{"heap/conn", func(r Result) string { return bytesText(r.HeapPerConnBytes) }},
	{"goroutines", func(r Result) string {
		return fmt.Sprintf("%s → %s", commas(int64(r.GoroutinesBefore)), commas(int64(r.GoroutinesAfter)))
	}},
	{"heap in use", func(r Result) string {
		return fmt.Sprintf("%s → %s", bytesText(r.HeapBefore), bytesText(r.HeapAfter))
	}},
	{"delivered", func(r Result) string { return num(float64(r.Messages)) }},
}

// idle connects C clients that receive nothing and measures what they cost the server at rest:
// resident memory, heap and goroutines, each read after a forced GC before and after
// connecting. One message per key afterwards checks that every client is really subscribed.
func (r *runner) idle(ctx context.Context, rep *Report) error {
	plan := r.plan()
	rep.columns = idleColumns
	for _, kind := range r.kinds() {
		err := r.withServer(ctx, kind, func(t *target) error {
			if err := r.sleep(ctx, 500*time.Millisecond, nil); err != nil {
				return err
			}
			forced := t.gc(ctx)
			_, rss0, _ := t.usage(ctx)
			rs0, err := t.runtimeStats(ctx)
			if err != nil {
				return err
			}
			rec := newRecorder()
			r.prog.show("[%s idle] connecting %d clients", kind, len(plan.specs))
			clients, err := dialAll(ctx, t.base, t.source, plan.specs, r.opt.Parallel, rec, r.rs)
			if err != nil {
				return err
			}
			defer closeAll(clients)
			if err := r.sleep(ctx, time.Second, nil); err != nil {
				return err
			}
			t.gc(ctx)
			_, rss1, _ := t.usage(ctx)
			rs1, err := t.runtimeStats(ctx)
			if err != nil {
				return err
			}
			if r.opt.HeapProfile != "" {
				if err := t.heapProfile(ctx, r.opt.HeapProfile+"."+kind); err != nil {
					return fmt.Errorf("heap profile: %w", err)
				}
			}
			n := float64(len(clients))
			res := Result{
				Server: kind, Clients: len(clients), RSSBytes: rss1, RSSPerConnBytes: float64(rss1-rss0) / n,
				GoroutinesBefore: rs0.Goroutines, GoroutinesAfter: rs1.Goroutines, HeapBefore: rs0.HeapInuse, HeapAfter: rs1.HeapInuse,
				HeapPerConnBytes: (rs1.HeapInuse - rs0.HeapInuse) / n,
			}
			if r.opt.Source == "http" {
				// One message per key: every client should get exactly one.
				s := newHTTPSink(t.base, t.source)
				batch := make([]outMsg, len(plan.fanTo))
				for k := range batch {
					batch[k] = outMsg{key: k, body: []byte(`{"ts":` + fmt.Sprint(time.Now().UnixNano()) + `}`)}
					rec.expected.Add(plan.fanTo[k])
				}
				err = s.send(ctx, batch)
				s.close()
				if err != nil {
					return err
				}
				drain(ctx, rec, 5*time.Second)
				res.Messages = int(rec.delivered.Load())
			}
			rep.Results = append(rep.Results, res)
			if !forced {
				rep.Notes = append(rep.Notes, kind+": the server could not be made to collect its garbage; memory figures include uncollected garbage")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	rep.Summary = append(rep.Summary, "target: under 16 KiB of server RSS per idle connection (Centrifugo 50–57 KiB; issue 6's bare loop 30 KiB)")
	rep.Notes = append(rep.Notes, "RSS and heap are read after a forced GC and FreeOSMemory, before and after connecting; per connection is the difference over the clients",
		"delivered: one message was then published per key; every client should have received exactly one")
	return nil
}
