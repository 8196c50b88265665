package redisstreams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redis"
)

// Type is the source type's name in the configuration.
const Type = "redis-streams"

// Source reads one stream of one Redis server through a consumer group. It implements
// source.Source; Run is called by one source.Runner at a time, and Counters may be called from
// any goroutine.
type Source struct {
	cfg   Config // with defaults applied
	opt   goredis.Options
	shape shape

	tally                                          source.Tally
	received, acked, claimed, deleted, ackFailures atomic.Uint64
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters struct {
	source.Counters
	// Received counts the entries read, new, pending and claimed.
	Received uint64 `json:"received"`
	// Acked counts the entries Redis confirmed acknowledged (XACK).
	Acked uint64 `json:"acked"`
	// Claimed counts the entries taken over from other consumers of the group (XAUTOCLAIM).
	Claimed uint64 `json:"claimed"`
	// Deleted counts the pending entries found deleted from the stream (trimmed, XDEL): there
	// was nothing to pass on, and they left the pending list.
	Deleted uint64 `json:"deleted"`
	// AckFailures counts the acknowledgements that did not reach Redis (a lost connection, a
	// stop that could not acknowledge in time): their entries come again.
	AckFailures uint64 `json:"ack_failures"`
}

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any {
	return Counters{
		Counters: s.tally.Counters(), Received: s.received.Load(), Acked: s.acked.Load(),
		Claimed: s.claimed.Load(), Deleted: s.deleted.Load(), AckFailures: s.ackFailures.Load(),
	}
}

func init() { source.Register(Type, New) }

var (
	_ source.Counted       = (*Source)(nil)
	_ source.Acknowledging = (*Source)(nil)
)

// AcknowledgesAfterEmit reports that the source acknowledges an entry only once its router (or,
// in a cluster, its log) took it: always. source.Acknowledging.
func (s *Source) AcknowledgesAfterEmit() bool { return true }

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("redis-streams: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	// A read waits up to Block for entries, and may come in a pipeline (after an XACK), whose
	// reads go-redis bounds by ReadTimeout alone: Block and the time to answer.
	opt, err := d.Conn.Options(d.Block + d.ConnectTimeout)
	if err != nil {
		return nil, fmt.Errorf("redis-streams: %w", err)
	}
	opt.ClientName = clientName(d.Consumer)
	return &Source{
		cfg: d, opt: *opt,
		shape: shape{stream: d.Stream, fields: d.Fields, bodyField: d.BodyField, keyField: d.KeyField},
	}, nil
}

// clientName is the connection's name (CLIENT LIST) for a consumer: its name, with what CLIENT
// SETNAME refuses (spaces, newlines, anything but printable ASCII) replaced by '_'.
func clientName(consumer string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, consumer)
}

// Run connects, makes sure the group exists, and hands every entry to emit, acknowledging it
// once emit returned nil: first this consumer's pending entries, then those other consumers
// left idle past claim_idle, then new ones. It returns when the connection fails (an error, so
// that the Runner reconnects) or ctx is done (nil), after acknowledging what was passed on.
// Refused credentials, and a key that is not a stream, are marked source.Permanent.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	client := redis.RunClient(ctx, s.opt)
	defer client.Close()
	if err := s.createGroup(ctx, client); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(err)
	}
	s.tally.Connected()
	up()
	r := &reader{s: s, client: client, emit: emit}
	err := r.run(ctx)
	r.ackLeft(ctx, errors.Is(err, errEmit))
	if ctx.Err() != nil || errors.Is(err, errEmit) {
		return nil
	}
	return classify(err)
}

// createGroup creates the group at Start, with the stream if absent; a group that exists is
// left as it is.
func (s *Source) createGroup(ctx context.Context, client *goredis.Client) error {
	err := client.XGroupCreateMkStream(ctx, s.cfg.Stream, s.cfg.Group, s.cfg.Start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redis-streams: create group %q on %q: %w", s.cfg.Group, s.cfg.Stream, err)
	}
	return nil
}

// classify marks the errors that retrying soon will not cure: refused credentials, and a key
// that holds something else than a stream.
func classify(err error) error {
	if strings.Contains(err.Error(), "WRONGTYPE") {
		return source.Permanent(err)
	}
	return redis.Classify(err)
}

// finalAckTimeout bounds the acknowledgement on a new connection when a Run ends with entries
// passed on and not yet acknowledged (reader.ackLeft).
const finalAckTimeout = 5 * time.Second
