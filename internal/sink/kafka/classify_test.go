package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamux/streamux/internal/sink"
)

// Kafka's own error values, as franz-go returns them wrapped: what retrying cannot cure fails
// the sink; the rest is tried again.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err       error
		permanent bool
	}{
		{kerr.SaslAuthenticationFailed, true},
		{kerr.TopicAuthorizationFailed, true},
		{kerr.UnknownTopicOrPartition, true},
		{kerr.MessageTooLarge, true},
		{kerr.NotLeaderForPartition, false},
		{kerr.RequestTimedOut, false},
		{fmt.Errorf("dial tcp: connection refused"), false},
	} {
		got := classify(fmt.Errorf("kafka: %w", c.err))
		if sink.IsPermanent(got) != c.permanent {
			t.Errorf("%v: permanent %v, want %v", c.err, sink.IsPermanent(got), c.permanent)
		}
	}
}
