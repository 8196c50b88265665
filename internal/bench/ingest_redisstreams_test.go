package bench

import (
	"testing"

	"github.com/streamux/streamux/internal/sourcetest"
)

// -ingest-via redis-streams preloads a stream for each consumer in turn and times streamux's
// source against the bare go-redis loop.
func TestIngestRedisStreams(t *testing.T) {
	sourcetest.RequireServer(t, "Redis", "127.0.0.1:6379")
	t.Setenv(RedisURLEnv, "redis://127.0.0.1:6379")
	o := tiny("ingest")
	o.IngestVia, o.Messages, o.Rounds = "redis-streams", 3000, 2
	rep := runJSON(t, "ingest", o)
	if len(rep.Results) != 2 {
		t.Fatalf("results %+v, want streamux and bare-ack", rep.Results)
	}
	for _, r := range rep.Results {
		if r.MsgsPerSec <= 0 || r.Messages != 6000 || r.OfBare <= 0 {
			t.Errorf("%+v", r)
		}
	}
}
