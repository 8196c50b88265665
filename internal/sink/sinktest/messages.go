package sinktest

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/stream"
)

// NumberHeader is the header every message of Messages carries: its index, so that Check can
// tell a message delivered again from one out of order.
const NumberHeader = "sinktest-n"

// Messages returns n messages of every shape a broker must carry byte for byte, numbered from
// first: JSON written with spaces (which an event would compact), UTF-8 text, bytes that are
// not UTF-8, empty bodies, of random sizes up to 200 KiB; keys of dot-separated tokens
// (a NATS subject's), and headers of printable UTF-8 with no space around it, region among
// them.
func Messages(first, n int) []*stream.Message {
	regions := []string{"eu", "us", "ap"}
	msgs := make([]*stream.Message, n)
	for i := range n {
		num := first + i
		h := map[string]string{NumberHeader: strconv.Itoa(num), "region": regions[num%len(regions)]}
		for j := range rand.IntN(4) {
			// Without spaces around it, which NATS does not carry.
			h[fmt.Sprintf("X-Extra_%d", j)] = strings.TrimSpace(text(rand.IntN(40)))
		}
		msgs[i] = &stream.Message{
			Key:     fmt.Sprintf("k%d.%s", num%5, regions[rand.IntN(len(regions))]),
			Headers: h,
			Body:    body(num),
			Time:    time.Now(),
		}
	}
	return msgs
}

// size is a random body size: mostly small, now and then up to 200 KiB.
func size() int {
	switch rand.IntN(10) {
	case 0:
		return rand.IntN(200 << 10)
	case 1, 2:
		return rand.IntN(16 << 10)
	default:
		return rand.IntN(300)
	}
}

// body is message num's: by num%4, JSON with spaces, text, bytes that are not UTF-8, or none.
func body(num int) []byte {
	switch num % 4 {
	case 0:
		return fmt.Appendf(nil, "{ \"n\" : %d,\n  \"pad\": %q }", num, text(size()))
	case 1:
		return []byte(text(size()))
	case 2:
		b := make([]byte, 1+size())
		for i := range b {
			b[i] = byte(rand.IntN(256))
		}
		b[0] = 0xff // never valid UTF-8
		return b
	default:
		return []byte{}
	}
}

// text is n runes of printable UTF-8: letters, spaces, quotes, accents, CJK, no control.
func text(n int) string {
	alphabet := []rune("abcxyzABC 019 \"'\\é中€-_.:;/{}")
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[rand.IntN(len(alphabet))])
	}
	return b.String()
}

// Got is one message as a test read it back from the broker.
type Got struct {
	Key     string
	Headers map[string]string
	Body    []byte
}

// Check compares got, what a test read back from the broker, with want, the messages of
// Messages that the sink delivered, in order: each must be there, in order, with its headers
// and body byte for byte, and the key key(m) (unless key is nil). With again, a message may
// come again after it came (a batch sent again whole, at least once), never before.
func Check(t testing.TB, got []Got, want []*stream.Message, key func(*stream.Message) string, again bool) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("sinktest: Check with nothing wanted")
	}
	index := make(map[string]int, len(want)) // a message's number: its index in want
	for i, m := range want {
		index[m.Headers[NumberHeader]] = i
	}
	next, errs := 0, 0
	for i, g := range got {
		n, ok := index[g.Headers[NumberHeader]]
		switch {
		case !ok:
			t.Errorf("message %d read back is none of those sent: headers %v", i, g.Headers)
		case n > next:
			t.Errorf("message %d read back is number %s, want %s: one is missing or out of order", i, g.Headers[NumberHeader], want[next].Headers[NumberHeader])
		case n < next && !again:
			t.Errorf("message %d read back is number %s again", i, g.Headers[NumberHeader])
		default:
			if err := same(g, want[n], key); err != nil {
				t.Errorf("message %d read back (number %s): %v", i, g.Headers[NumberHeader], err)
			}
			if n == next {
				next++
			}
			continue
		}
		if errs++; errs > 5 {
			t.Fatal("sinktest: too many differences")
		}
	}
	if next != len(want) {
		t.Errorf("%d of %d messages read back", next, len(want))
	}
}

func same(g Got, m *stream.Message, key func(*stream.Message) string) error {
	switch body := m.Payload(); {
	case !bytes.Equal(g.Body, body):
		return fmt.Errorf("body of %d bytes, want %d: %.40q…, want %.40q…", len(g.Body), len(body), g.Body, body)
	case !maps.Equal(g.Headers, m.Headers):
		return fmt.Errorf("headers %q, want %q", g.Headers, m.Headers)
	case key != nil && g.Key != key(m):
		return fmt.Errorf("key %q, want %q", g.Key, key(m))
	}
	return nil
}
