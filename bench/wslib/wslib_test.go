package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestEncodeEvent checks that every event is eventSize bytes of valid JSON carrying its ts.
func TestEncodeEvent(t *testing.T) {
	for _, seq := range []uint64{0, 7, 1 << 40} {
		ts := time.Now().UnixNano()
		b := encodeEvent(seq, 99, ts)
		if len(b) != eventSize {
			t.Fatalf("seq %d: %d bytes, want %d", seq, len(b), eventSize)
		}
		var v struct {
			Seq uint64 `json:"seq"`
			TS  int64  `json:"ts"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.Seq != seq || v.TS != ts {
			t.Fatalf("seq %d: %s: %+v %v", seq, b, v, err)
		}
	}
}

// TestFrames feeds the client's parser a stream of frames cut at random places, as reads would
// return it, and checks that it counts every text frame once and none of the others.
func TestFrames(t *testing.T) {
	var stream []byte
	texts := 0
	for i := range 300 {
		var f ws.Frame
		switch {
		case i%50 == 7:
			f = ws.NewPingFrame([]byte("p"))
		case i%97 == 3:
			f = ws.NewTextFrame(bytes.Repeat([]byte("y"), 70000)) // a 64-bit length
		default:
			f = ws.NewTextFrame(encodeEvent(uint64(i), i%10, time.Now().UnixNano()))
		}
		if f.Header.OpCode == ws.OpText {
			texts++
		}
		stream = append(stream, ws.MustCompileFrame(f)...)
	}
	c := &client{counts: &counts{}}
	var partial []byte
	for len(stream) > 0 {
		n := min(1+rand.IntN(3000), len(stream))
		partial = c.frames(append(partial, stream[:n]...), time.Now().UnixNano())
		partial = append([]byte(nil), partial...)
		stream = stream[n:]
	}
	if len(partial) != 0 {
		t.Errorf("%d bytes left over", len(partial))
	}
	if got := c.counts.frames.Load(); got != uint64(texts) {
		t.Errorf("counted %d frames, want %d", got, texts)
	}
}

// TestHist checks the histogram's buckets and quantiles.
func TestHist(t *testing.T) {
	prev := -1
	for ns := int64(0); ns < 1<<40; ns += ns/7 + 1 {
		b := bucketOf(ns)
		if b < prev || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", ns, b, prev)
		}
		prev = b
		if v := bucketValue(b); v < float64(ns)*0.96 || v > float64(ns)*1.04+1 {
			t.Fatalf("bucketValue(bucketOf(%d)) = %g", ns, v)
		}
	}
	s := snapshot{hist: make([]uint64, histBuckets)}
	for i := range 1000 {
		s.hist[bucketOf(int64(i+1)*int64(time.Microsecond))]++
	}
	if q := s.quantile(0.5); q < 480e3 || q > 520e3 {
		t.Errorf("p50 = %g ns, want about 500 µs", q)
	}
	if q := s.quantile(0.99); q < 960e3 || q > 1020e3 {
		t.Errorf("p99 = %g ns, want about 990 µs", q)
	}
	if m := s.max(); m < 970e3 || m > 1040e3 {
		t.Errorf("max = %g ns, want about 1 ms", m)
	}
}

// TestQueue checks the bound and that take returns everything queued, in order.
func TestQueue(t *testing.T) {
	q := newQueue(3)
	evs := []*event{{}, {}, {}, {}}
	for i, ev := range evs {
		if ok := q.push(ev); ok != (i < 3) {
			t.Fatalf("push %d: %v", i, ok)
		}
	}
	got := q.take(nil, nil)
	if len(got) != 3 || got[0] != evs[0] || got[2] != evs[2] {
		t.Fatalf("take: %v", got)
	}
	done := make(chan struct{})
	close(done)
	if got := q.take(got, done); got != nil {
		t.Fatalf("take from an empty queue after done: %v", got)
	}
}
