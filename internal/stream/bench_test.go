package stream

import (
	"testing"
	"time"
)

// BenchmarkNewMessage is the cost of making and encoding one message event, by kind of body: compact JSON
// (copied as it is after one quick check), JSON with spaces (checked and compacted by
// encoding/json), text, and bytes that are not UTF-8.
func BenchmarkNewMessage(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"json", `{"ts":1764086400000000000,"seq":17,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx","tier":"gold"}`},
		{"json-spaced", `{"ts": 1764086400000000000, "seq": 17, "pad": "xxxxxxxxxxxxxxxxxxxxxxxx", "tier": "gold"}`},
		{"text", `the quick brown fox jumps over the lazy dog, 17 times over and over again`},
		{"binary", "\xff\xfe\x00\x01the quick brown fox jumps over the lazy dog, 17 times over"},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := &Message{Source: "orders", Seq: 17, Key: "k17", Headers: map[string]string{"region": "eu"}, Body: []byte(c.body), Time: time.Now()}
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				NewMessage(m).JSON()
			}
		})
	}
}
