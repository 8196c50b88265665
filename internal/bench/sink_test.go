package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The sink scenario runs a server per batch.max and reports, for each, every message through
// the webhook sink to the receiver, the requests that carried them, and the lag.
func TestSink(t *testing.T) {
	o := tiny("sink")
	o.Messages, o.SinkBatches = 400, []int{1, 100}
	rep := runJSON(t, "sink", o)
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want one per batch.max", len(rep.Results))
	}
	for i, b := range o.SinkBatches {
		r := rep.Results[i]
		if r.Messages != 400 || r.MsgsPerSec <= 0 || r.RequestsPerSec <= 0 || r.P99ms <= 0 || r.MaxMs < r.P99ms {
			t.Errorf("batch.max %d: %+v", b, r)
		}
		// A request carries at most batch.max messages; with batch.max 1, exactly one.
		if per := r.MsgsPerSec / r.RequestsPerSec; per > float64(b)+0.01 || (b == 1 && per < 0.99) {
			t.Errorf("batch.max %d: %.2f messages a request", b, per)
		}
	}
	// At a rate, with positions in memory and a batch.wait, as a table.
	o.Rate, o.SinkBatches, o.SinkMemory, o.SinkWait, o.JSON = 2000, []int{10}, true, 5*time.Millisecond, false
	var out bytes.Buffer
	if err := Run(context.Background(), "sink", o, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"streamux-bench sink", "batch.max 10", "requests/s", "max lag msgs", "posted at 2,000 msg/s", "data_dir: memory", "batch.wait 5ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}
