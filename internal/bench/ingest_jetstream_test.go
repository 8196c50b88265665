package bench

import (
	"testing"

	"github.com/streamux/streamux/internal/sourcetest"
)

// -ingest-via jetstream preloads a stream for each consumer in turn and times streamux's
// jetstream source against the bare nats.go consumer.
func TestIngestJetStream(t *testing.T) {
	o := tiny("ingest")
	o.NATSURL = sourcetest.RequireJetStream(t)
	o.IngestVia, o.Messages, o.Rounds = "jetstream", 3000, 2
	rep := runJSON(t, "ingest", o)
	if len(rep.Results) != 2 || rep.Results[0].Server != kindStreamux || rep.Results[1].Server != "bare-ack" {
		t.Fatalf("results %+v, want streamux and bare-ack", rep.Results)
	}
	for _, r := range rep.Results {
		if r.MsgsPerSec <= 0 || r.Messages != 6000 || r.OfBare <= 0 {
			t.Errorf("%+v", r)
		}
	}
}
