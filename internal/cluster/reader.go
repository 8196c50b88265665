package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/stream"
)

// Kind says what an Item is.
type Kind uint8

// The kinds of Item.
const (
	// KindMessage: Msg is the message at sequence Msg.Seq.
	KindMessage Kind = iota + 1
	// KindSkip: the log holds no message at sequences First..Last any more, and this reader
	// never read them: they were removed (max_age, max_bytes, max_msgs, a purge, a delete)
	// before it got there, or held an envelope no node can decode. Each node that meets
	// them gives the same gap, and the sequences name nothing.
	KindSkip
	// KindReset: the log was reset (deleted and made again, or lost with a server's
	// memory): its Epoch is new, and sequences up to Last (the last this reader read of the
	// old log) may name other messages in it. The caller must forget what it holds of the
	// source (its history) and give a gap to anyone who resumes from an id of the old log;
	// the reader goes on from First, the new log's first sequence.
	KindReset
)

func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindSkip:
		return "skip"
	case KindReset:
		return "reset"
	}
	return "Kind(" + fmt.Sprint(uint8(k)) + ")"
}

// Item is one step of a log as a Reader or Fetch reads it.
type Item struct {
	Kind Kind
	// Msg is a KindMessage's message, with Source, Seq, Key, Headers, Body, BodyIsJSON
	// and Time set. It is the caller's: nothing else holds it or its body.
	Msg *stream.Message
	// First and Last are a KindSkip's sequences, both included. For a KindReset, Last is
	// the last sequence read of the old log, and First the new log's first.
	First, Last uint64
	// Epoch is a KindReset's new epoch.
	Epoch time.Time
}

// Reader tuning.
const (
	// readBatch is how many messages a reader asks the server for at a time; it asks for
	// more when half have come.
	readBatch = 2048
	// readHeartbeat is how often an idle server says that the consumer lives: two missed,
	// and the reader makes a new consumer (the server that held it is gone).
	readHeartbeat = time.Second
	// DefaultCheckEvery is how often an idle Reader asks whether its log was reset.
	DefaultCheckEvery = 2 * time.Second
)

// Reader reads a log in order, from a given sequence on, without a hole: every sequence
// comes once, as a message or within a skip; a reset is an item of its own. It runs on an
// ephemeral consumer of its own that it makes again (after the last sequence it read)
// whenever the server holding it goes, and checks each time, and every CheckEvery while
// idle, that the log is the one it was reading.
//
// A Reader belongs to one goroutine: the one that calls Run, which may be called again
// after it returns to go on where it stopped. Close it when done.
type Reader struct {
	log        *Log
	next       uint64    // the sequence the reader reads next
	epoch      time.Time // the log's; zero until the first check
	checkEvery time.Duration

	cons jetstream.Consumer
	dseq uint64 // the consumer's sequence of the last message it delivered

	mu sync.Mutex                // guards it, which Run's context stops from another goroutine
	it jetstream.MessagesContext // the consumer's messages
}

// Reader returns a Reader of the log from sequence from on (1 or less: from the log's
// first). epoch is the log's epoch as the caller knew it (Info.Epoch, or a Reset's), so that
// a reset that happened before the Reader began is an item too; the zero time takes the log
// as it is. checkEvery is how often an idle reader checks for a reset (0: DefaultCheckEvery).
// It does no I/O: Run does.
func (l *Log) Reader(from uint64, epoch time.Time, checkEvery time.Duration) *Reader {
	if checkEvery <= 0 {
		checkEvery = DefaultCheckEvery
	}
	return &Reader{log: l, next: max(from, 1), epoch: epoch, checkEvery: checkEvery}
}

// Next is the sequence the reader reads next.
func (r *Reader) Next() uint64 { return r.next }

// Epoch is the epoch of the log the reader reads, zero before Run has checked it.
func (r *Reader) Epoch() time.Time { return r.epoch }

// Run reads the log and hands each item to yield, in order, until ctx ends (it returns
// ctx.Err()), yield returns an error (Run returns it; the item counts as handed, and the next
// Run goes on after it), or the connection is closed. A stream that does not exist is
// waited for, checked every CheckEvery: when it comes back, it is a reset.
func (r *Reader) Run(ctx context.Context, yield func(Item) error) error {
	// Next waits for a message without a context: when ctx ends, this stops the iterator,
	// which ends the wait.
	unhook := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		if r.it != nil {
			r.it.Stop()
		}
		r.mu.Unlock()
	})
	defer unhook()
	defer r.stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.it == nil {
			reset, err := r.start(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, natsgo.ErrConnectionClosed) {
					return err
				}
				// The stream is missing, or the servers could not answer: try again.
				if err := sleep(ctx, r.checkEvery); err != nil {
					return err
				}
				continue
			}
			if reset != nil {
				if err := yield(*reset); err != nil {
					return err
				}
			}
		}
		msg, err := r.it.Next(jetstream.NextMaxWait(r.checkEvery))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, natsgo.ErrTimeout) {
				// Idle: check that the log is still the one read.
				if info, err := r.log.Info(ctx); err != nil || !info.Epoch.Equal(r.epoch) || info.Last+1 < r.next {
					r.stop()
				}
				continue
			}
			if r.log.c.nc.IsClosed() {
				return fmt.Errorf("cluster: read %s: %w", r.log.stream, natsgo.ErrConnectionClosed)
			}
			r.stop() // no heartbeat, the consumer deleted, …: make another
			continue
		}
		meta, err := msg.Metadata()
		if err != nil || meta.Sequence.Consumer != r.dseq+1 {
			// A message the client dropped, or a stray: the consumer starts again.
			r.stop()
			continue
		}
		r.dseq = meta.Sequence.Consumer
		seq := meta.Sequence.Stream
		if seq < r.next {
			// Behind where a consumer made after r.next began: not this log.
			r.stop()
			continue
		}
		if seq > r.next {
			skip := Item{Kind: KindSkip, First: r.next, Last: seq - 1}
			r.next = seq
			if err := yield(skip); err != nil {
				return err
			}
		}
		item := r.log.decode(msg, seq, meta.Timestamp)
		r.next = seq + 1
		if err := yield(item); err != nil {
			return err
		}
	}
}

// start makes the consumer, at r.next, and checks the log's epoch once it exists: a
// consumer lives and dies with the stream it was made on, so a log whose epoch is still the
// reader's afterwards is the one the consumer reads. A new epoch is a reset: the consumer is
// made again at the new log's first sequence, and start returns the reset's item.
func (r *Reader) start(ctx context.Context) (*Item, error) {
	l := r.log
	var reset *Item
	for range 3 {
		cons, err := l.c.js.CreateConsumer(ctx, l.stream, r.consumerConfig())
		if err != nil {
			return nil, err
		}
		info, err := l.Info(ctx)
		if err != nil {
			r.deleteConsumer(cons)
			return nil, err
		}
		if r.epoch.IsZero() {
			r.epoch = info.Epoch
		}
		if !info.Epoch.Equal(r.epoch) || info.Last+1 < r.next {
			r.deleteConsumer(cons)
			reset = &Item{Kind: KindReset, Last: r.next - 1, First: info.First, Epoch: info.Epoch}
			r.epoch, r.next = info.Epoch, info.First
			continue
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(readBatch), jetstream.PullHeartbeat(readHeartbeat),
			jetstream.PullExpiry(5*readHeartbeat))
		if err != nil {
			r.deleteConsumer(cons)
			return nil, err
		}
		r.mu.Lock()
		r.cons, r.it, r.dseq = cons, it, 0
		if ctx.Err() != nil {
			it.Stop() // ctx ended before the iterator was there to stop
		}
		r.mu.Unlock()
		return reset, nil
	}
	return nil, errors.New("cluster: the log keeps being reset")
}

func (r *Reader) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Description:       "streamux reader of " + r.log.source + " on " + r.log.c.cfg.Node,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       r.next,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 30 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	}
}

// stop ends the consumer, if any.
func (r *Reader) stop() {
	r.mu.Lock()
	if r.it != nil {
		r.it.Stop()
		r.it = nil
	}
	r.mu.Unlock()
	if r.cons != nil {
		r.deleteConsumer(r.cons)
		r.cons = nil
	}
}

// deleteConsumer deletes a consumer on a short deadline of its own, since it may be called
// as the caller's context ends; one that cannot be deleted goes after its inactive
// threshold.
func (r *Reader) deleteConsumer(cons jetstream.Consumer) {
	if r.log.c.nc.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.log.c.js.DeleteConsumer(ctx, r.log.stream, cons.CachedInfo().Name)
}

// Close releases the reader's consumer. Run must have returned.
func (r *Reader) Close() { r.stop() }

// decode makes the item of a delivered message at seq; stored is when the log stored it.
func (l *Log) decode(msg jetstream.Msg, seq uint64, stored time.Time) Item {
	m := &stream.Message{Source: l.source, Seq: seq}
	// nats.go copies every delivered payload out of its read buffer into a slice of its own
	// that nothing else holds, so the body may be a slice of it (stream.Message.Body).
	data := msg.Data()
	if isEnvelope(data) {
		if err := decodeEnvelope(data, m); err != nil {
			return Item{Kind: KindSkip, First: seq, Last: seq}
		}
	} else {
		m.Body = data
		m.Headers = foreignHeaders(msg.Headers())
		m.Time = stored.UTC()
	}
	return Item{Kind: KindMessage, Msg: m}
}

// Fetch reads up to n items of the log from sequence from on, as a Reader would, for a
// replay: the messages it holds from there, and a skip for sequences it no longer holds
// (one from `from` to the log's first, when from is older). It returns fewer when the log
// ends sooner, and none when from is past its end. If the log's epoch is not epoch (the zero
// time accepts any), it returns ErrReset: the caller's ids name other messages now.
func (l *Log) Fetch(ctx context.Context, epoch time.Time, from uint64, n int) ([]Item, error) {
	from = max(from, 1)
	if n <= 0 {
		return nil, nil
	}
	cfg := jetstream.ConsumerConfig{
		Description:       "streamux fetch of " + l.source,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	}
	cons, err := l.c.js.CreateConsumer(ctx, l.stream, cfg)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, ErrNoLog
		}
		return nil, fmt.Errorf("cluster: fetch %s: %w", l.stream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = l.c.js.DeleteConsumer(dctx, l.stream, cons.CachedInfo().Name)
	}()
	info, err := l.Info(ctx)
	if err != nil {
		return nil, err
	}
	if !epoch.IsZero() && !info.Epoch.Equal(epoch) {
		return nil, ErrReset
	}
	// Fetch what there is up to the log's end as it was a moment ago: no waiting for more.
	want := 0
	if info.Last >= from {
		want = int(min(uint64(n), info.Last-max(from, info.First)+1))
	}
	items := make([]Item, 0, min(n, want+1))
	next := from
	if info.First > from && info.Msgs == 0 {
		// Nothing is held from there: all of it is gone.
		if info.Last >= from {
			items = append(items, Item{Kind: KindSkip, First: from, Last: info.Last})
		}
		return items, nil
	}
	var dseq uint64
	for len(items) < n && want > 0 && next <= info.Last {
		batch, err := cons.FetchNoWait(min(want, readBatch))
		if err != nil {
			return items, fmt.Errorf("cluster: fetch %s: %w", l.stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil || meta.Sequence.Consumer != dseq+1 {
				return items, fmt.Errorf("cluster: fetch %s: a message is missing", l.stream)
			}
			dseq = meta.Sequence.Consumer
			seq := meta.Sequence.Stream
			if seq > next {
				items = append(items, Item{Kind: KindSkip, First: next, Last: seq - 1})
			}
			if len(items) >= n {
				break
			}
			items = append(items, l.decode(msg, seq, meta.Timestamp))
			next = seq + 1
			want--
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsgo.ErrTimeout) {
			return items, fmt.Errorf("cluster: fetch %s: %w", l.stream, err)
		}
		if got == 0 {
			break
		}
	}
	if len(items) > n {
		items = items[:n]
	}
	return items, nil
}

// ErrReset is what Fetch returns when the log's epoch is not the caller's.
var ErrReset = errors.New("cluster: the log was reset")
