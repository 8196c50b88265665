package bench

import (
	"context"
	"fmt"
	"net"
	"time"
)

// slow measures the fast clients alone for half the duration, then with one more client that
// never reads (its receive buffer shrunk to 4 KiB, so it fills at once) for the other half,
// in the same run, on the same connections.
func (r *runner) slow(ctx context.Context, rep *Report) error {
	plan := r.plan()
	rep.columns = loadColumns
	half := max(r.opt.Duration/2, time.Second)
	for _, kind := range r.kinds() {
		err := r.withServer(ctx, kind, func(t *target) error {
			rec := newRecorder()
			clients, err := dialAll(ctx, t.base, t.source, plan.specs, r.opt.Parallel, rec, r.rs)
			if err != nil {
				return err
			}
			defer closeAll(clients)
			_, stopPub, err := r.startPublisher(ctx, t, rec, plan.fanTo, r.opt.Rate)
			if err != nil {
				return err
			}
			defer stopPub()
			if err := r.sleep(ctx, r.opt.Warmup, nil); err != nil {
				return err
			}
			alone, _, err := r.measure(ctx, t, rec, half, "fast only", "", nil)
			if err != nil {
				return err
			}
			slowConn, pending, err := dial(ctx, t.base, "", t.source, r.opt.Policy, dialOptions{rcvbuf: 4096})
			if err != nil {
				return err
			}
			joined := time.Now()
			var kickedAt time.Duration
			kicks0 := r.slowKicks(ctx, t)
			watch := func() string {
				if t.kind != kindStreamux {
					return ""
				}
				if kickedAt == 0 && r.slowKicks(ctx, t) > kicks0 {
					kickedAt = time.Since(joined)
				}
				if kickedAt > 0 {
					return fmt.Sprintf("slow client cut after %v", kickedAt.Round(100*time.Millisecond))
				}
				return "slow client connected"
			}
			with, _, err := r.measure(ctx, t, rec, half, "with slow", r.profileFile(t.kind), watch)
			if err != nil {
				slowConn.Close()
				return err
			}
			watch()
			if perr := stopPub(); perr != nil {
				slowConn.Close()
				return fmt.Errorf("publisher: %w", perr)
			}
			drain(ctx, rec, 5*time.Second)
			fate := slowFate(slowConn, pending, r.rs)
			alone.Rate, with.Rate = r.opt.Rate, r.opt.Rate
			alone.Clients, with.Clients = len(clients), len(clients)
			with.Dropped, with.Disconnected = dropped(rec), rec.closed.Load()
			rep.Results = append(rep.Results, alone, with)
			line := fmt.Sprintf("%-9s with the slow client the fast ones got %.1f%% of their rate alone, p99 %s ms against %s ms (%+.0f%%); the slow client %s",
				kind, 100*with.Delivered/alone.Delivered, ms(with.P99ms), ms(alone.P99ms), 100*(with.P99ms-alone.P99ms)/alone.P99ms, fate)
			if kickedAt > 0 {
				line += fmt.Sprintf(" after %v", kickedAt.Round(100*time.Millisecond))
			}
			rep.Summary = append(rep.Summary, line)
			return nil
		})
		if err != nil {
			return err
		}
	}
	rep.Summary = append(rep.Summary, "target: the fast clients' rate and p99 unchanged within 10%")
	rep.Notes = append(rep.Notes, "dropped and disconnected count the fast clients only, over the whole run")
	return nil
}

// slowKicks reads streamux_slow_consumers_total; 0 for the bare server.
func (r *runner) slowKicks(ctx context.Context, t *target) float64 {
	if t.kind != kindStreamux {
		return 0
	}
	m, err := scrape(ctx, t.httpc, t.base+"/metrics", "streamux_slow_consumers_total")
	if err != nil {
		return 0
	}
	return m["streamux_slow_consumers_total"]
}

// slowFate reads what the slow client was sent, at last, to learn how its stream ended.
func slowFate(conn net.Conn, pending []byte, rs reactors) string {
	rec := newRecorder()
	c := newClient(0, conn, pending, rec)
	if err := rs.add(c); err != nil {
		conn.Close()
		return "(unknown: " + err.Error() + ")"
	}
	still := false
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		still = true
		c.close()
		<-c.done
	}
	gaps := rec.cur.Load().gaps.Load()
	switch code := c.closeCode.Load(); {
	case code == 4008:
		return "was disconnected as a slow consumer (close 4008)"
	case code != 0:
		return fmt.Sprintf("was closed with code %d", code)
	case c.cut.Load():
		return "was cut without a close frame (a write timeout)"
	case still && gaps > 0:
		return fmt.Sprintf("was still connected at the end, told of what it missed in %d gap events", gaps)
	}
	return fmt.Sprintf("was still connected at the end, %s messages behind when it began to read", commas(int64(rec.delivered.Load())))
}
