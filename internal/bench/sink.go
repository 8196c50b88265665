package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sinkName is the webhook sink the sink scenario configures.
const sinkName = "bench-sink"

// sinkColumns are the sink scenario's table.
var sinkColumns = []column{colPhase,
	{"messages", func(r Result) string { return commas(int64(r.Messages)) }},
	{"msgs/s", func(r Result) string { return num(r.MsgsPerSec) }},
	{"requests/s", func(r Result) string { return num(r.RequestsPerSec) }},
	{"msgs/request", func(r Result) string {
		if r.RequestsPerSec == 0 {
			return "-"
		}
		return num(r.MsgsPerSec / r.RequestsPerSec)
	}},
	colP50, colP99, colMax,
	{"max lag msgs", func(r Result) string { return commas(int64(r.Lag)) }},
	{"max lag s", func(r Result) string { return num(r.LagSeconds) }},
	{"CPU µs/msg", func(r Result) string { return num(r.CPUPerMessageUs) }},
}

// sink measures a webhook sink (DESIGN.md's "How well": sink): for each batch.max of
// SinkBatches, a streamux server with an http source and one webhook sink, batch.max that and
// batch.wait SinkWait, delivering to a receiver in this process that acknowledges each request
// at once. Messages messages are posted to the source (as fast as it takes them, or at Rate), and
// the run is timed from the first post until the receiver has every one: messages/s through
// the sink end to end, the receiver's requests/s, the latency from the post to the receiver,
// and the most the sink lagged behind (GET /v1/sinks, polled).
func (r *runner) sink(ctx context.Context, rep *Report) error {
	o := r.opt
	switch {
	case o.URL != "":
		return errors.New("sink configures the server's sinks: -url does not apply")
	case o.Source != "http":
		return fmt.Errorf("sink feeds an http source: -source %s does not apply", o.Source)
	case len(o.SinkBatches) == 0 || o.Messages <= 0:
		return errors.New("sink needs -sink-batches and -messages")
	}
	rep.columns = sinkColumns
	recv, err := newSinkReceiver()
	if err != nil {
		return err
	}
	defer recv.close()
	for _, b := range o.SinkBatches {
		res, err := r.sinkRound(ctx, recv, b)
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, res)
		rep.Summary = append(rep.Summary, fmt.Sprintf("batch.max %d: %s msg/s through the webhook sink, %s requests/s to the receiver",
			b, num(res.MsgsPerSec), num(res.RequestsPerSec)))
	}
	offered := "posted as fast as the http source takes them (requests of 1,000 NDJSON lines), so the sink works through a backlog: msg/s is its throughput, and latency and lag measure the backlog"
	if o.Rate > 0 {
		offered = fmt.Sprintf("posted at %s msg/s, every %v", num(o.Rate), o.PublishEvery)
	}
	store := "a data directory of its own, where the sink's position is saved (written and fsynced) after each acknowledged batch"
	if o.SinkMemory {
		store = "data_dir: memory, the sink's position kept in memory"
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("each batch.max: a server of its own, with %s; batch.wait %v", store, o.SinkWait),
		fmt.Sprintf("%s messages of %d bytes %s", commas(int64(o.Messages)), o.Size, offered),
		"timed from the first post until the receiver (in this process, on loopback, 204 at once) has every message; latency is from the post to the receiver; max lag is the most GET /v1/sinks showed, polled every 50 ms",
		"CPU µs/msg is the server's CPU over the round, the ingest included; the round is refused if the sink lost a message (a gap: the history is sized to hold the round)")
	return nil
}

// sinkRound runs one server with a sink of batch.max batch through a warm-up and a measured
// round.
func (r *runner) sinkRound(ctx context.Context, recv *sinkReceiver, batch int) (Result, error) {
	o := r.opt
	sc := r.serverConfig()
	sc.name = fmt.Sprintf("sink-%d", batch)
	// A data directory of its own: a sink of the same name must not begin where another
	// round's left off.
	sc.dataDir = filepath.Join(r.dir, sc.name+"-data")
	if o.SinkMemory {
		sc.dataDir = "memory"
	}
	warm := min(1000, o.Messages)
	// The history holds a whole round, so that a sink behind it loses nothing.
	sc.extra = fmt.Sprintf(`history: {size: %d, max_bytes: %d}
sinks:
  - name: %s
    type: webhook
    url: %s
    source: %s
    batch: {max: %d, wait: %v}
`, o.Messages+warm+1000, int64(1)<<30, sinkName, recv.url, o.SourceName, batch, o.SinkWait)
	if o.QueueEvents > 0 {
		sc.extra += fmt.Sprintf("limits: {webhook_allow_private: true, queue_events: %d}\n", o.QueueEvents)
	} else {
		sc.extra += "limits: {webhook_allow_private: true}\n"
	}
	sc.queueEvents = 0
	t, err := r.start(ctx, kindStreamux, sc)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = func() error {
		if err := waitHealthy(ctx, t); err != nil {
			return err
		}
		url := t.base + "/v1/sources/" + o.SourceName + "/messages"
		// Warm-up: connections made, code paths run; not measured.
		r.prog.show("[sink] batch.max %d: warming up", batch)
		recv.reset(0, warm)
		if err := postSinkMessages(ctx, t.httpc, url, 0, warm, o.Size, 0, o.PublishEvery); err != nil {
			return err
		}
		if err := recv.wait(ctx, 2*time.Minute); err != nil {
			return fmt.Errorf("sink warm-up, batch.max %d: %w; the sink: %s\n%s", batch, err, sinkState(ctx, t), t.logs)
		}

		recv.reset(warm, o.Messages)
		cpu0, _, cpuOK := t.usage(ctx)
		pctx, stopPoll := context.WithCancel(ctx)
		polled := make(chan sinkLag, 1)
		go func() { polled <- pollSinkLag(pctx, t) }() // stopped and waited for below
		start := time.Now()
		posted := make(chan error, 1)
		go func() { // waited for below
			posted <- postSinkMessages(ctx, t.httpc, url, warm, o.Messages, o.Size, o.Rate, o.PublishEvery)
		}()
		done := make(chan error, 1)
		go func() { done <- recv.wait(ctx, 10*time.Minute) }() // waited for below
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var werr error
	wait:
		for {
			select {
			case werr = <-done:
				break wait
			case <-tick.C:
				got, reqs := recv.counts()
				r.prog.show("[sink] batch.max %d: %s of %s messages at the receiver, %s requests", batch, commas(int64(got)), commas(int64(o.Messages)), commas(int64(reqs)))
			}
		}
		elapsed := time.Since(start)
		perr := <-posted
		stopPoll()
		lag := <-polled
		if werr != nil {
			return fmt.Errorf("sink, batch.max %d: %w\n%s", batch, werr, t.logs)
		}
		if perr != nil {
			return perr
		}
		cpu1, _, _ := t.usage(ctx)
		got, reqs := recv.counts()
		l := recv.lat.summary()
		res = Result{
			Server: kindStreamux, Phase: fmt.Sprintf("batch.max %d", batch), Messages: got,
			MsgsPerSec: float64(got) / elapsed.Seconds(), RequestsPerSec: float64(reqs) / elapsed.Seconds(),
			P50ms: round2(l.p50), P99ms: round2(l.p99), MaxMs: round2(l.max),
			Lag: lag.messages, LagSeconds: lag.seconds,
		}
		if cpuOK {
			res.CPUSeconds = (cpu1 - cpu0).Seconds()
			res.CPUPerMessageUs = res.CPUSeconds * 1e6 / float64(got)
		}
		return nil
	}()
	if serr := t.stop(); serr != nil && err == nil && ctx.Err() == nil {
		err = serr
	}
	return res, err
}

// sinkLag is the most a sink lagged, as GET /v1/sinks/{name} showed it.
type sinkLag struct {
	messages uint64
	seconds  float64
}

// pollSinkLag reads the sink's lag every 50 ms until ctx ends, and returns the most it saw.
func pollSinkLag(ctx context.Context, t *target) sinkLag {
	var most sinkLag
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var si struct {
			Lag        uint64  `json:"lag"`
			LagSeconds float64 `json:"lag_seconds"`
		}
		if t.get(ctx, t.base+"/v1/sinks/"+sinkName, &si) == nil {
			most.messages = max(most.messages, si.Lag)
			most.seconds = max(most.seconds, si.LagSeconds)
		}
		select {
		case <-ctx.Done():
			return most
		case <-tick.C:
		}
	}
}

// postSinkMessages posts the messages from … from+n-1 to url, {"i":I,"t":<post time, Unix
// ns>,"pad":"x…"} of about size bytes each, in requests of ingestLines NDJSON lines: as fast as
// the server takes them with rate 0, else rate a second, what is due every every.
func postSinkMessages(ctx context.Context, c *http.Client, url string, from, n, size int, rate float64, every time.Duration) error {
	pad := strings.Repeat("x", max(size-48, 0))
	body := func(i, count int) []byte {
		now := strconv.AppendInt(nil, time.Now().UnixNano(), 10)
		var b []byte
		for j := i; j < i+count; j++ {
			b = append(b, `{"i":`...)
			b = strconv.AppendInt(b, int64(j), 10)
			b = append(b, `,"t":`...)
			b = append(b, now...)
			b = append(b, `,"pad":"`...)
			b = append(b, pad...)
			b = append(b, "\"}\n"...)
		}
		return b
	}
	if rate <= 0 {
		for i := from; i < from+n; i += ingestLines {
			if err := postNDJSON(ctx, c, url, body(i, min(ingestLines, from+n-i))); err != nil {
				return err
			}
		}
		return nil
	}
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for sent := 0; sent < n; {
		due := min(int(time.Since(start).Seconds()*rate), n)
		for sent < due {
			k := min(ingestLines, due-sent)
			if err := postNDJSON(ctx, c, url, body(from+sent, k)); err != nil {
				return err
			}
			sent += k
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// sinkReceiver is the webhook receiver of the sink scenario: it reads each request, notes its
// messages and their latency from the post, and answers 204 at once.
type sinkReceiver struct {
	url  string
	srv  *http.Server
	done chan struct{} // closed when Serve has returned

	mu   sync.Mutex    // guards the fields below
	want int           // messages the round expects
	seen []bool        // by i - base
	base int           // the round's first i
	got  int           // distinct messages
	reqs int           // requests
	gaps int           // gap events: messages the sink lost
	dups int           // messages that came twice
	full chan struct{} // closed when every message of the round has come
	lat  *hist
}

func newSinkReceiver() (*sinkReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sinkReceiver{url: "http://" + ln.Addr().String() + "/hook", done: make(chan struct{}), lat: &hist{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { defer close(s.done); _ = s.srv.Serve(ln) }() // close waits for it
	return s, nil
}

func (s *sinkReceiver) close() {
	s.srv.Close()
	<-s.done
}

// reset starts a round of the n messages from first on.
func (s *sinkReceiver) reset(first, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.want, s.seen, s.got, s.reqs, s.gaps, s.dups = first, n, make([]bool, n), 0, 0, 0, 0
	s.full, s.lat = make(chan struct{}), &hist{}
}

func (s *sinkReceiver) counts() (got, reqs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got, s.reqs
}

// wait waits until the round's messages have all come, and fails if a message was lost (a gap)
// or none came for a minute.
func (s *sinkReceiver) wait(ctx context.Context, limit time.Duration) error {
	s.mu.Lock()
	full := s.full
	s.mu.Unlock()
	deadline := time.After(limit)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := 0, time.Now()
	for {
		select {
		case <-full:
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.gaps > 0 || s.dups > 0 {
				return fmt.Errorf("the receiver got %d gap events and %d duplicates", s.gaps, s.dups)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			got, _ := s.counts()
			return fmt.Errorf("the receiver got %d of %d messages in %v", got, s.want, limit)
		case <-tick.C:
			s.mu.Lock()
			got, gaps := s.got, s.gaps
			s.mu.Unlock()
			if gaps > 0 {
				return fmt.Errorf("the sink lost messages: %d gap events", gaps)
			}
			if got != last {
				last, lastAt = got, time.Now()
			} else if time.Since(lastAt) > time.Minute {
				return fmt.Errorf("the receiver got %d of %d messages, and nothing for a minute", got, s.want)
			}
		}
	}
}

var (
	bodyI   = []byte(`"body":{"i":`)
	bodyT   = []byte(`,"t":`)
	gapType = []byte(`"type":"gap"`)
)

func (s *sinkReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	now := time.Now().UnixNano()
	gaps := bytes.Count(b, gapType)
	s.mu.Lock()
	s.reqs++
	s.gaps += gaps
	for rest := b; ; {
		k := bytes.Index(rest, bodyI)
		if k < 0 {
			break
		}
		rest = rest[k+len(bodyI):]
		i, n := leadingInt(rest)
		rest = rest[n:]
		if !bytes.HasPrefix(rest, bodyT) {
			continue
		}
		rest = rest[len(bodyT):]
		ts, n := leadingInt(rest)
		rest = rest[n:]
		j := i - s.base
		if j < 0 || j >= len(s.seen) {
			continue // the warm-up's, sent again
		}
		if s.seen[j] {
			s.dups++
			continue
		}
		s.seen[j] = true
		s.got++
		s.lat.record(0, now-int64(ts))
		if s.got == s.want {
			close(s.full)
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// leadingInt parses the decimal integer at the start of b, and how many bytes it took.
func leadingInt(b []byte) (int, int) {
	v, n := 0, 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int(b[n]-'0')
		n++
	}
	return v, n
}

// sinkState is GET /v1/sinks/<sinkName> of t, for an error that says where the sink stands.
func sinkState(ctx context.Context, t *target) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/v1/sinks/"+sinkName, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := t.httpc.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}
