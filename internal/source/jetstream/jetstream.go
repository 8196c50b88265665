package jetstream

import (
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/nats"
)

// Config configures one jetstream source: the server (nats.Conn: url, credentials, TLS), the
// stream and its consumer (nats.JetStream: stream, consumer, start, ack_wait, max_ack_pending,
// inactive_threshold) and filter_subject. Its YAML field names are part of the configuration
// contract; the config package decodes them strictly. URL and Stream are required.
type Config = nats.StreamConfig

// Source reads one stream; see nats.StreamSource.
type Source = nats.StreamSource

// Counters are a Source's counters, as GET /v1/sources shows them under adapter.
type Counters = nats.StreamCounters

// The headers every message carries besides its own.
const (
	StreamHeader    = nats.StreamHeader
	SeqHeader       = nats.SeqHeader
	DeliveredHeader = nats.DeliveredHeader
)

func init() { source.Register("jetstream", New) }

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) { return nats.NewStream(c) }
