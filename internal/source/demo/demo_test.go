package demo

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

func TestCountsAtTheRate(t *testing.T) {
	s := New(Config{Rate: 2000, Payload: "rich"})
	ctx, cancel := context.WithCancel(context.Background())
	var got []*stream.Message
	err := s.Run(ctx, func() {}, func(_ context.Context, m *stream.Message) error {
		got = append(got, m)
		if len(got) == 200 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got {
		n := uint64(i + 1)
		var body struct {
			N        uint64  `json:"n"`
			Even     bool    `json:"even"`
			Amount   float64 `json:"amount"`
			Customer struct{ Tier string }
			Tags     []string
		}
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatalf("message %d: %v: %s", n, err, m.Body)
		}
		wantKey := "odd"
		if n%2 == 0 {
			wantKey = "even"
		}
		if body.N != n || m.Key != wantKey || body.Even != (n%2 == 0) || m.Headers["region"] == "" || len(body.Tags) != 2 || body.Customer.Tier == "" {
			t.Fatalf("message %d: key %q body %s", n, m.Key, m.Body)
		}
	}
}

func TestSimplePayloadAndValidate(t *testing.T) {
	s := New(Config{})
	m := s.message(7)
	if string(m.Body) != `{"n":7}` || m.Key != "odd" || m.Headers != nil || m.Time.IsZero() {
		t.Fatalf("%q %q %v", m.Body, m.Key, m.Headers)
	}
	if s.rate != 10 {
		t.Fatalf("default rate %v", s.rate)
	}
	if errs := (&Config{Rate: -1, Payload: "huge"}).Validate(); len(errs) != 2 {
		t.Fatalf("validate: %v", errs)
	}
}
