package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// publisher sends messages at a rate that may change. Each message i of a rate's run carries
// the time it was due, start + i/rate, not the time it was sent: a publisher that falls behind
// (because the server pushes back) shows as latency rather than hiding it.
type publisher struct {
	sink  sink
	every time.Duration // how often what is due is sent
	keys  int
	size  int
	rec   *recorder
	fanTo func(key int) uint64 // how many measured clients each key reaches

	rate atomic.Uint64 // math.Float64bits of msgs/s; 0 pauses
	gen  atomic.Uint64 // bumped by setRate, so that run restarts its schedule
	sent atomic.Uint64
}

// sink delivers one batch of messages to the server.
type sink interface {
	send(ctx context.Context, batch []outMsg) error
	close()
}

// outMsg is one message to publish: its key index and its body.
type outMsg struct {
	key  int
	body []byte
}

// maxBatch bounds the messages of one request.
const maxBatch = 4000

func (p *publisher) setRate(r float64) {
	p.rate.Store(math.Float64bits(r))
	p.gen.Add(1)
}

func (p *publisher) currentRate() float64 { return math.Float64frombits(p.rate.Load()) }

// run publishes until ctx is done or a send fails.
func (p *publisher) run(ctx context.Context) error {
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	var (
		gen      = p.gen.Load()
		start    = time.Now()
		sent     uint64
		seq      uint64
		batch    = make([]outMsg, 0, maxBatch)
		bodies   = make([]byte, 0, maxBatch*(p.size+48))
		keyBytes = make([][]byte, p.keys)
	)
	for k := range keyBytes {
		keyBytes[k] = []byte("k" + strconv.Itoa(k))
	}
	pad := strings.Repeat("x", max(p.size-40, 0))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if g := p.gen.Load(); g != gen {
			gen, start, sent = g, time.Now(), 0
		}
		rate := p.currentRate()
		if rate <= 0 {
			continue
		}
		// Message i (from 0) is due at start + i/rate.
		due := uint64(time.Since(start).Seconds()*rate) + 1
		for sent < due && ctx.Err() == nil {
			n := min(due-sent, maxBatch)
			batch, bodies = batch[:0], bodies[:0]
			for i := range n {
				k := int(seq % uint64(p.keys))
				ts := start.UnixNano() + int64(float64(sent+i)*1e9/rate)
				at := len(bodies)
				bodies = append(bodies, `{"ts":`...)
				bodies = strconv.AppendInt(bodies, ts, 10)
				bodies = append(bodies, `,"seq":`...)
				bodies = strconv.AppendUint(bodies, seq, 10)
				bodies = append(bodies, `,"pad":"`...)
				bodies = append(bodies, pad...)
				bodies = append(bodies, `"}`...)
				batch = append(batch, outMsg{key: k, body: bodies[at:len(bodies):len(bodies)]})
				seq++
			}
			if err := p.sink.send(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			var exp uint64
			for _, m := range batch {
				exp += p.fanTo(m.key)
			}
			ph := p.rec.cur.Load()
			ph.published.Add(n)
			ph.expected.Add(exp)
			p.rec.expected.Add(exp)
			p.sent.Add(n)
			sent += n
		}
	}
}

// httpSink posts NDJSON envelopes ({"key":…,"body":…} per line) to an http source.
type httpSink struct {
	client *http.Client
	url    string
	buf    bytes.Buffer
}

func newHTTPSink(base, source string) *httpSink {
	return &httpSink{
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 30 * time.Second},
		url:    base + "/v1/sources/" + source + "/messages?envelope=true",
	}
}

// envelopes lays out batch as NDJSON envelopes in buf.
func envelopes(buf *bytes.Buffer, batch []outMsg) {
	buf.Reset()
	for _, m := range batch {
		buf.WriteString(`{"key":"k`)
		buf.WriteString(strconv.Itoa(m.key))
		buf.WriteString(`","body":`)
		buf.Write(m.body)
		buf.WriteString("}\n")
	}
}

func (s *httpSink) send(ctx context.Context, batch []outMsg) error {
	envelopes(&s.buf, batch)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.buf.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("ingest: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

func (s *httpSink) close() { s.client.CloseIdleConnections() }

// httpStreamSink writes NDJSON envelopes into one streaming ingest request (?stream=true) that
// stays open: a batch costs the server a read, not a request.
type httpStreamSink struct {
	pw     *io.PipeWriter
	cancel context.CancelFunc
	done   chan error // the request's outcome
	buf    bytes.Buffer
}

func newHTTPStreamSink(base, source string) *httpStreamSink {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &httpStreamSink{pw: pw, cancel: cancel, done: make(chan error, 1)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sources/"+source+"/messages?envelope=true&stream=true", pr)
	if err != nil {
		s.done <- err
		pr.CloseWithError(err)
		return s
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	go func() { // close waits for it
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
			}
		}
		if err != nil {
			err = fmt.Errorf("ingest stream: %w", err)
			pr.CloseWithError(err) // fails the next send
		}
		s.done <- err
	}()
	return s
}

func (s *httpStreamSink) send(ctx context.Context, batch []outMsg) error {
	defer context.AfterFunc(ctx, func() { s.pw.CloseWithError(ctx.Err()) })()
	envelopes(&s.buf, batch)
	_, err := s.pw.Write(s.buf.Bytes())
	return err
}

// close ends the request and waits for its answer, or cuts it after a while.
func (s *httpStreamSink) close() {
	s.pw.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cancel()
		<-s.done
	}
	s.cancel()
}

// amqpSink publishes to a RabbitMQ exchange with routing key kN.
type amqpSink struct {
	conn     *amqp091.Connection
	ch       *amqp091.Channel
	exchange string
}

func newAMQPSink(url, exchange string) (*amqpSink, error) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("amqp: channel: %w", err)
	}
	if exchange != "" {
		if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
			conn.Close()
			return nil, fmt.Errorf("amqp: declare exchange %q: %w", exchange, err)
		}
	}
	return &amqpSink{conn: conn, ch: ch, exchange: exchange}, nil
}

func (s *amqpSink) send(ctx context.Context, batch []outMsg) error {
	for _, m := range batch {
		err := s.ch.PublishWithContext(ctx, s.exchange, "k"+strconv.Itoa(m.key), false, false,
			amqp091.Publishing{ContentType: "application/json", Body: m.body})
		if err != nil {
			return fmt.Errorf("amqp: publish: %w", err)
		}
	}
	return nil
}

// close deletes the exchange the run used (streamux declared it for the run) and disconnects.
func (s *amqpSink) close() {
	if s.exchange != "" {
		_ = s.ch.ExchangeDelete(s.exchange, false, false)
	}
	s.conn.Close()
}
