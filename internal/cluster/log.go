package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Log is one source's log: the JetStream stream StreamName(prefix, source), whose sequence
// is the source's seq on every node. A Log holds no state of its own but its names, and is
// safe for concurrent use: HTTP ingest on many goroutines may Append at once.
type Log struct {
	c       *Conn
	source  string
	stream  string // the stream's name, which is also its one subject
	subject string
}

// Info is what a log holds, as the servers last told.
type Info struct {
	// First and Last are the sequences of the oldest and newest messages kept; an empty log
	// has First == Last+1 (a new one First 1, Last 0).
	First, Last uint64
	// Msgs counts the messages kept: Last-First+1 less those deleted one by one.
	Msgs uint64
	// Epoch is when the stream was made. Another epoch for the same name means the log was
	// reset (deleted and made again, or lost with a server's memory): its sequences name
	// other messages than the ones before.
	Epoch time.Time
	// Leader is the server that leads the stream (the one that orders its appends), "" for a
	// server that is not clustered.
	Leader string
}

// Ack is what the log answered for one entry.
type Ack struct {
	// Seq is the entry's sequence in the log: its event id is "<source>:<Seq>".
	Seq uint64
	// Duplicate says that the log already held an entry of that ID (within its duplicate
	// window), whose sequence Seq is; this entry was not stored again.
	Duplicate bool
}

// Errors of appends. A typed error only where the caller acts on it.
var (
	// ErrStale is what a Writer's Append returns, within a *StaleError, when the log holds
	// a message that this writer did not append after the last one it did: another node
	// holds the source now. The writer must stop.
	ErrStale = errors.New("cluster: stale writer: another node appended to the log")
	// ErrLeaseLost is what a Writer's Append returns when the lease it was made with is no
	// longer held (by this node's clock), before it sends anything.
	ErrLeaseLost = errors.New("cluster: lease lost")
	// ErrNoLog is what Append returns when the source's stream does not exist (deleted, or
	// lost with a server's memory): Ensure makes it again.
	ErrNoLog = errors.New("cluster: the log does not exist")
)

// StaleError tells a stale Writer where the log is.
type StaleError struct {
	// Expected is the last sequence the writer appended (or saw when it began); Last is the
	// log's, which another writer appended.
	Expected, Last uint64
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("cluster: stale writer: expected the log to end at %d, it ends at %d", e.Expected, e.Last)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// Log returns the log of the source called name. It does no I/O: Ensure makes the stream.
func (c *Conn) Log(name string) *Log {
	s := StreamName(c.cfg.StreamPrefix, name)
	return &Log{c: c, source: name, stream: s, subject: s}
}

// Source is the name of the log's source.
func (l *Log) Source() string { return l.source }

// Stream is the name of the log's JetStream stream.
func (l *Log) Stream() string { return l.stream }

// streamConfig is the stream the configuration asks for.
func (l *Log) streamConfig(firstSeq uint64) jetstream.StreamConfig {
	cfg := l.c.cfg
	limit := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	storage := jetstream.FileStorage
	if cfg.Storage == StorageMemory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:              l.stream,
		Description:       "streamux: the log of source " + l.source,
		Subjects:          []string{l.subject},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            cfg.MaxAge,
		MaxBytes:          limit(cfg.MaxBytes),
		MaxMsgs:           limit(cfg.MaxMsgs),
		MaxMsgsPerSubject: -1,
		MaxConsumers:      -1,
		Storage:           storage,
		Replicas:          cfg.Replicas,
		Duplicates:        cfg.DuplicateWindow,
		FirstSeq:          firstSeq,
	}
}

// Ensure makes the log's stream, or updates it to the configuration's retention, replicas
// and storage: any node may call it, at any time, as often as it likes. A stream that must
// be made starts at firstSeq (when more than 1), so that a log made again after a reset
// gives no message an id that the old one gave: pass one more than the highest sequence this
// node has seen of the source (0 if none). nats-server 2.9 ignores a first sequence in a
// stream's configuration; there an empty new stream is purged up to firstSeq, which has the
// same effect unless another node appended in between.
//
// Changing storage (file, memory) of an existing stream is refused by the servers: Ensure
// says so, and the stream must be deleted (which resets the log) to change it.
func (l *Log) Ensure(ctx context.Context, firstSeq uint64) (Info, error) {
	cfg := l.streamConfig(max(firstSeq, 1))
	if cfg.FirstSeq == 1 {
		cfg.FirstSeq = 0
	}
	// A stream that is as configured is left alone: nodes that start together all call
	// Ensure, and an update, even to the same configuration, is work for the servers that
	// appends meet.
	if s, err := l.c.js.Stream(ctx, l.stream); err == nil && asConfigured(s.CachedInfo().Config, cfg) {
		return toInfo(s.CachedInfo()), nil
	}
	s, err := l.c.js.UpdateStream(ctx, withoutFirstSeq(cfg))
	made := false
	for range 3 {
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			break
		}
		s, err = l.c.js.CreateStream(ctx, cfg)
		made = err == nil
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another node made it between the two calls.
			s, err = l.c.js.UpdateStream(ctx, withoutFirstSeq(cfg))
		}
	}
	if err != nil {
		return Info{}, fmt.Errorf("cluster: stream %s of source %q: %w", l.stream, l.source, err)
	}
	info := toInfo(s.CachedInfo())
	if made && firstSeq > 1 && info.Msgs == 0 && info.Last+1 < firstSeq {
		if err := s.Purge(ctx, jetstream.WithPurgeSequence(firstSeq)); err != nil {
			return Info{}, fmt.Errorf("cluster: stream %s: start at %d: %w", l.stream, firstSeq, err)
		}
		return l.Info(ctx)
	}
	return info, nil
}

// asConfigured reports whether the stream's configuration has what want sets.
func asConfigured(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Discard == want.Discard &&
		have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes && have.MaxMsgs == want.MaxMsgs &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.MaxConsumers == want.MaxConsumers &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates
}

// withoutFirstSeq: an update must not name a first sequence, which the servers refuse to
// change.
func withoutFirstSeq(c jetstream.StreamConfig) jetstream.StreamConfig {
	c.FirstSeq = 0
	return c
}

// Info asks the servers what the log holds. It returns ErrNoLog if the stream does not exist.
func (l *Log) Info(ctx context.Context) (Info, error) {
	s, err := l.c.js.Stream(ctx, l.stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return Info{}, ErrNoLog
		}
		return Info{}, fmt.Errorf("cluster: stream %s: %w", l.stream, err)
	}
	return toInfo(s.CachedInfo()), nil
}

func toInfo(si *jetstream.StreamInfo) Info {
	info := Info{First: si.State.FirstSeq, Last: si.State.LastSeq, Msgs: si.State.Msgs, Epoch: si.Created}
	if info.First == 0 {
		info.First = info.Last + 1
	}
	if si.Cluster != nil {
		info.Leader = si.Cluster.Leader
	}
	return info
}

// Delete deletes the log's stream and everything in it: the log is reset. For tests and
// operators; nothing in streamux calls it.
func (l *Log) Delete(ctx context.Context) error {
	err := l.c.js.DeleteStream(ctx, l.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}

// Headers of the NATS header block: the only ones an appended message has, all acted on by
// the servers. (Not Nats-Expected-Stream: a stream's subject is its own already, and its
// name, which may hold "Nats-Msg-Id" when a source is so called, would hide that header
// from nats-server 2.9; see userMsgID.)
const (
	hdrMsgID        = jetstream.MsgIDHeader
	hdrExpectLast   = jetstream.ExpectedLastSeqHeader
	hdrExpectLastID = jetstream.ExpectedLastMsgIDHeader
)

// Tuning of appends.
const (
	// appendWindow bounds the publishes of one Append awaiting their acks.
	appendWindow = 1024
	// ackTimeout is how long a publish waits for its ack before it is sent again (with the
	// same id, so stored once).
	ackTimeout = 5 * time.Second
	// retryFirst and retryMax bound the pause before sending again what was refused for
	// want of a stream leader (an election) or of a connection.
	retryFirst = 20 * time.Millisecond
	retryMax   = 1 * time.Second
)

// msgID is the Nats-Msg-Id of an entry: "u" and its ID when that is short printable ASCII
// with no space (which a NATS header carries as it is), "h" and a hash of it otherwise (so a
// line break in an envelope's "id" cannot end the header), or one that Append makes.
func (l *Log) msgID(id string) string {
	if id == "" {
		return l.c.newID()
	}
	return userMsgID(id)
}

// outMsg builds the NATS message of an entry.
func (l *Log) outMsg(e Entry, id string) *natsgo.Msg {
	data := appendEnvelope(make([]byte, 0, envelopeSize(e.Msg)), e.Msg)
	h := natsgo.Header{hdrMsgID: {id}}
	return &natsgo.Msg{Subject: l.subject, Data: data, Header: h}
}

// Append stores entries in the log, in order, and returns their acks once JetStream has
// stored every one (on a majority of the replicas): each entry's sequence, or the earlier
// one of the same ID within the duplicate window. Entries go out pipelined, up to 1,024
// awaiting their acks at once, so that a batch costs about one round trip, not one each.
//
// What JetStream could not store for a passing reason (no stream leader during an
// election, a lost connection, an ack that never came) is sent again with the same ids, so
// stored once, until ctx ends; ctx is the bound. Other appends, of other nodes, may
// interleave with these. If one entry is refused and the ones after it are not, a retry puts
// it after them: the order of one Append holds except across a leader change.
//
// On error, acks holds what was stored (Seq 0 for the rest); entries without an ID that are
// sent again in another Append may then be stored twice. ErrNoLog: the stream is gone.
func (l *Log) Append(ctx context.Context, entries []Entry) ([]Ack, error) {
	acks := make([]Ack, len(entries))
	if len(entries) == 0 {
		return acks, nil
	}
	msgs := make([]*natsgo.Msg, len(entries))
	todo := make([]int, len(entries))
	for i, e := range entries {
		msgs[i] = l.outMsg(e, l.msgID(e.ID))
		todo[i] = i
	}
	wait := retryFirst
	for {
		results := l.publish(ctx, msgs, todo)
		var again []int
		var fatal error
		noLog := true
		for k, r := range results {
			i := todo[k]
			switch {
			case r.err == nil:
				acks[i] = Ack{Seq: r.ack.Sequence, Duplicate: r.ack.Duplicate}
			case retryable(r.err):
				again = append(again, i)
				noLog = noLog && errors.Is(r.err, jetstream.ErrNoStreamResponse)
			default:
				if fatal == nil {
					fatal = r.err
				}
			}
		}
		if ctx.Err() != nil {
			return acks, ctx.Err()
		}
		if fatal != nil {
			return acks, fmt.Errorf("cluster: append to %s: %w", l.stream, fatal)
		}
		if len(again) == 0 {
			return acks, nil
		}
		if noLog {
			// Bounded: asked during an election, the question can go unanswered.
			ictx, cancel := context.WithTimeout(ctx, reconcileWait)
			_, err := l.Info(ictx)
			cancel()
			if errors.Is(err, ErrNoLog) {
				return acks, ErrNoLog
			}
		}
		if err := sleep(ctx, wait); err != nil {
			return acks, err
		}
		wait = min(2*wait, retryMax)
		todo = again
	}
}

// result is the outcome of one publish.
type result struct {
	ack *jetstream.PubAck
	err error
}

// publish sends msgs[i] for each i of todo, at most appendWindow awaiting acks at a time, and
// returns their outcomes in todo's order. An ack still awaited when ctx ends is ctx's error.
func (l *Log) publish(ctx context.Context, msgs []*natsgo.Msg, todo []int) []result {
	results := make([]result, len(todo))
	futures := make([]jetstream.PubAckFuture, len(todo))
	await := func(k int) {
		f := futures[k]
		if f == nil {
			return
		}
		select {
		case a := <-f.Ok():
			results[k] = result{ack: a}
		case err := <-f.Err():
			results[k] = result{err: err}
		case <-ctx.Done():
			results[k] = result{err: ctx.Err()}
		}
	}
	for k, i := range todo {
		if k >= appendWindow {
			await(k - appendWindow)
		}
		if ctx.Err() != nil {
			results[k] = result{err: ctx.Err()}
			continue
		}
		f, err := l.c.js.PublishMsgAsync(msgs[i], jetstream.WithStallWait(ackTimeout))
		if err != nil {
			results[k] = result{err: err}
			continue
		}
		futures[k] = f
	}
	for k := max(0, len(todo)-appendWindow); k < len(todo); k++ {
		await(k)
	}
	return results
}

// retryable reports whether a publish that failed with err may succeed if sent again: the
// stream had no leader, the connection was down, the ack did not come, the servers were
// busy.
func retryable(err error) bool {
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, natsgo.ErrNoResponders),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, jetstream.ErrTooManyStalledMsgs),
		errors.Is(err, natsgo.ErrTimeout),
		errors.Is(err, natsgo.ErrDisconnected),
		errors.Is(err, natsgo.ErrConnectionReconnecting),
		errors.Is(err, natsgo.ErrReconnectBufExceeded):
		return true
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		return apiErr.Code == http.StatusServiceUnavailable
	}
	return false
}

// wrongLastSeq reports whether err is JetStream's refusal of an expected last sequence.
func wrongLastSeq(err error) bool {
	apiErr, ok := errors.AsType[*jetstream.APIError](err)
	return ok && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
