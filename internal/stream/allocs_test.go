//go:build !race

package stream

import (
	"strings"
	"testing"
	"time"
)

// Making a message's event allocates nothing, and encoding it its bytes and nothing else,
// whatever its body: the event lives in the message.
func TestNewMessageAllocsOnce(t *testing.T) {
	for _, body := range []string{`{"n":1,"s":"x"}`, `plain text`, `the text`, ` nothing`, strings.Repeat("a longer text, ", 20), "\xff\xfe binary", ``} {
		m := &Message{Source: "s", Seq: 7, Key: "k", Headers: map[string]string{"a": "b"}, Body: []byte(body), Time: time.Now()}
		if n := testing.AllocsPerRun(100, func() { NewMessage(m) }); n != 0 {
			t.Errorf("body %q: %.1f allocations per event not read, want 0", body, n)
		}
		if n := testing.AllocsPerRun(100, func() { NewMessage(m).JSON() }); n != 1 {
			t.Errorf("body %q: %.1f allocations per event encoded, want 1", body, n)
		}
	}
}
