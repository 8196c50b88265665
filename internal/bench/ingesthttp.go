package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// IngestVias are the ways the ingest scenario can feed streamux: RabbitMQ, or requests to the
// http source's endpoint in one of its three forms.
var IngestVias = []string{"amqp", "ndjson", "envelope", "stream"}

// sourceIngests are the ingest scenarios of the durable sources (issue 19), each in a file of
// its own that registers it from init (registerIngest): streamux's source beside a bare consumer
// of the same library, on the same server in the same run.
var sourceIngests = map[string]func(r *runner, ctx context.Context, rep *Report) error{}

// registerIngest adds the ingest scenario via, run by f; called from init.
func registerIngest(via string, f func(r *runner, ctx context.Context, rep *Report) error) {
	sourceIngests[via] = f
	IngestVias = append(IngestVias, via)
}

// ingestLines is how many messages one ingest request carries.
const ingestLines = 1000

// ingestHTTP measures how fast streamux takes messages POSTed to its http source, with no
// clients: Rounds rounds of Messages messages of Size bytes each, in requests of ingestLines
// NDJSON lines (plain bodies, envelopes, or all of a round in one streamed request), sent one
// after the other, each round timed from its first request until the server's router has
// routed the round's last message.
func (r *runner) ingestHTTP(ctx context.Context, rep *Report) error {
	o := r.opt
	rep.columns = ingestColumns
	return r.withServer(ctx, kindStreamux, func(t *target) error {
		url := t.base + "/v1/sources/" + o.SourceName + "/messages"
		if o.IngestVia == "envelope" {
			url += "?envelope=true"
		}
		if o.IngestVia == "stream" {
			url += "?stream=true"
		}
		routed := uint64(0)
		var elapsed time.Duration
		cpu0, _, _ := t.usage(ctx)
		for round := 1; round <= o.Rounds; round++ {
			r.prog.show("[ingest] round %d/%d: posting %s messages (%s)", round, o.Rounds, commas(int64(o.Messages)), o.IngestVia)
			reqs := ingestBodies(o.Messages, o.Size, o.IngestVia)
			start := time.Now()
			for _, body := range reqs {
				if err := postNDJSON(ctx, t.httpc, url, body); err != nil {
					return err
				}
			}
			routed += uint64(o.Messages)
			if err := waitRouted(ctx, t, routed); err != nil {
				return err
			}
			elapsed += time.Since(start)
		}
		cpu1, _, ok := t.usage(ctx)
		total := o.Messages * o.Rounds
		res := Result{Server: kindStreamux, Messages: total, MsgsPerSec: float64(total) / elapsed.Seconds()}
		if ok {
			res.CPUSeconds = (cpu1 - cpu0).Seconds()
			res.CPUPerDeliveryUs = res.CPUSeconds * 1e6 / float64(total)
		}
		rep.Results = append(rep.Results, res)
		rep.Summary = append(rep.Summary, fmt.Sprintf("streamux took %s messages/s of %d bytes over HTTP (%s)", num(res.MsgsPerSec), o.Size, o.IngestVia))
		rep.Notes = append(rep.Notes,
			fmt.Sprintf("one publisher, requests of %d NDJSON lines one after the other (stream: a round's lines in one streamed request); timed until the router has routed the last", ingestLines),
			"CPU µs/msg is the server's CPU over the rounds, the posting included; no bare comparison exists for HTTP ingest")
		return nil
	})
}

// ingestBodies returns the request bodies of one round: n lines of JSON of about size bytes,
// ingestLines to a body (one body for stream).
func ingestBodies(n, size int, via string) [][]byte {
	pad := strings.Repeat("x", max(size-40, 0))
	per := ingestLines
	if via == "stream" {
		per = n
	}
	var bodies [][]byte
	var b []byte
	for i := range n {
		if via == "envelope" {
			b = append(b, `{"key":"k`...)
			b = strconv.AppendInt(b, int64(i%100), 10)
			b = append(b, `","body":`...)
		}
		b = append(b, `{"i":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"pad":"`...)
		b = append(b, pad...)
		b = append(b, `"}`...)
		if via == "envelope" {
			b = append(b, '}')
		}
		b = append(b, '\n')
		if (i+1)%per == 0 || i == n-1 {
			bodies = append(bodies, b)
			b = nil
		}
	}
	return bodies
}

func postNDJSON(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("ingest: %s %s", resp.Status, msg)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// waitRouted waits until the server's source has routed n messages since it started.
func waitRouted(ctx context.Context, t *target, n uint64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var list []struct {
			Name     string `json:"name"`
			Counters struct {
				Received uint64 `json:"received"`
			} `json:"counters"`
		}
		if err := t.get(ctx, t.base+"/v1/sources", &list); err != nil {
			return err
		}
		for _, s := range list {
			if s.Name == t.source && s.Counters.Received >= n {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("ingest: the server routed fewer than %d messages in time", n)
		}
		time.Sleep(time.Millisecond)
	}
}
