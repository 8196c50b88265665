package bench

import (
	"testing"

	"github.com/streamux/streamux/internal/sourcetest"
)

// -ingest-via mqtt preloads a persistent session for each consumer in turn, on a Mosquitto of
// the scenario's own, and times streamux's mqtt source against bare paho.golang consumers.
func TestIngestMQTT(t *testing.T) {
	sourcetest.RequireCommand(t, "mosquitto")
	o := tiny("ingest")
	o.IngestVia, o.Messages, o.Rounds = "mqtt", 2000, 2
	rep := runJSON(t, "ingest", o)
	if len(rep.Results) != 3 || rep.Results[0].Server != kindStreamux || rep.Results[1].Server != "bare-ack" || rep.Results[2].Server != "bare-manual-ack" {
		t.Fatalf("results %+v, want streamux, bare-ack and bare-manual-ack", rep.Results)
	}
	for _, r := range rep.Results {
		if r.MsgsPerSec <= 0 || r.Messages != 4000 || r.OfBare <= 0 {
			t.Errorf("%+v", r)
		}
	}
}
