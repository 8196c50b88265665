// Package demo is the seed's example source: the integers 1, 2, 3, … at a steady rate, with the
// key "even" or "odd". It needs no server, so streamux runs out of the box.
//
// Concurrency: Run is called by one source.Runner goroutine at a time; the counter survives a
// restart of Run, so the numbers never repeat.
package demo

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// Config configures a demo source.
type Config struct {
	// Rate is messages per second. Defaults to 10.
	Rate float64 `yaml:"rate"`
	// Payload is "simple" (the default: {"n":N}) or "rich": fields of several types, so that
	// predicates on the body can be tried.
	Payload string `yaml:"payload"`
}

// Validate returns every problem with c.
func (c *Config) Validate() []error {
	var errs []error
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate must be positive, got %v", c.Rate))
	}
	if c.Rate > 1e7 {
		errs = append(errs, fmt.Errorf("rate %v is over the maximum of 10,000,000", c.Rate))
	}
	switch c.Payload {
	case "", "simple", "rich":
	default:
		errs = append(errs, fmt.Errorf(`payload must be "simple" or "rich", got %q`, c.Payload))
	}
	return errs
}

// Source counts. Create it with New.
type Source struct {
	rate float64
	rich bool
	n    uint64
	now  func() time.Time
}

// New returns a demo source; c must be valid.
func New(c Config) *Source {
	if c.Rate == 0 {
		c.Rate = 10
	}
	return &Source{rate: c.Rate, rich: c.Payload == "rich", now: time.Now}
}

var _ source.Source = (*Source)(nil)

func init() {
	source.Register("demo", func(c Config) (*Source, error) { return New(c), nil })
}

// Run emits messages at the configured rate until ctx is done. At high rates it wakes at most
// every millisecond and emits all that are due, so the average rate holds.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	up()
	start, sent := s.now(), uint64(0)
	interval := time.Duration(float64(time.Second) / s.rate)
	tick := time.NewTicker(max(interval, time.Millisecond))
	defer tick.Stop()
	for {
		due := uint64(s.now().Sub(start).Seconds()*s.rate) + 1
		for ; sent < due; sent++ {
			s.n++
			if err := emit(ctx, s.message(s.n)); err != nil {
				return nil // only a cancelled ctx or a stopped router gets here
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

var (
	regions = [...]string{"eu", "us", "ap"}
	tiers   = [...]string{"gold", "silver", "bronze", "none"}
)

func (s *Source) message(n uint64) *stream.Message {
	m := &stream.Message{Key: "odd", Time: s.now()}
	if n%2 == 0 {
		m.Key = "even"
	}
	b := make([]byte, 0, 192)
	b = append(b, `{"n":`...)
	b = strconv.AppendUint(b, n, 10)
	if s.rich {
		region := regions[n%3]
		m.Headers = map[string]string{"region": region}
		b = append(b, `,"even":`...)
		b = strconv.AppendBool(b, n%2 == 0)
		b = append(b, `,"amount":`...)
		b = strconv.AppendFloat(b, float64(n%1000)+0.5, 'f', -1, 64)
		b = append(b, `,"region":"`...)
		b = append(b, region...)
		b = append(b, `","customer":{"id":"c`...)
		b = strconv.AppendUint(b, n%97, 10)
		b = append(b, `","tier":"`...)
		b = append(b, tiers[n%4]...)
		b = append(b, `"},"tags":["demo","`...)
		b = append(b, m.Key...)
		b = append(b, `"],"sent_ms":`...)
		b = strconv.AppendInt(b, m.Time.UnixMilli(), 10)
		if n%5 == 0 {
			b = append(b, `,"note":null`...)
		}
	}
	m.Body = append(b, '}')
	return m
}
