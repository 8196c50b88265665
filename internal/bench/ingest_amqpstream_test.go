package bench

import (
	"testing"

	"github.com/streamux/streamux/internal/sourcetest"
)

// -ingest-via amqp-stream and amqp-quorum time streamux's amqp source on a stream (a new one per
// turn) and on a quorum queue against bare amqp091-go consumers, on the broker the amqp tests
// use.
func TestIngestAMQPQueueTypes(t *testing.T) {
	for _, via := range []string{"amqp-stream", "amqp-quorum"} {
		t.Run(via, func(t *testing.T) {
			o := tiny("ingest")
			o.AMQPURL = sourcetest.RequireAMQP(t)
			o.IngestVia, o.Messages, o.Rounds = via, 1500, 2
			rep := runJSON(t, "ingest", o)
			if len(rep.Results) != 3 || rep.Results[0].Server != kindStreamux || rep.Results[1].Server != "bare-ack" || rep.Results[2].Server != "bare-batch" {
				t.Fatalf("results %+v, want streamux, bare-ack and bare-batch", rep.Results)
			}
			for _, r := range rep.Results {
				if r.MsgsPerSec <= 0 || r.Messages != 3000 || r.OfBare <= 0 {
					t.Errorf("%+v", r)
				}
			}
		})
	}
}
