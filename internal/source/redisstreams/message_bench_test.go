package redisstreams

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// BenchmarkMessage is the cost of turning one entry, as go-redis reads it, into a message: what
// the source adds per entry to what a bare consumer of go-redis pays.
func BenchmarkMessage(b *testing.B) {
	e := goredis.XMessage{ID: "1764086400000-17", Values: map[string]any{
		"body": `{"ts":1764086400000000000,"pad":"xxxxxxxxxxxxxxxxxxxx"}`, "region": "eu",
	}}
	sh := shape{stream: "orders", bodyField: "body"}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		sh.message(e, false, now)
	}
}
