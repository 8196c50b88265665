package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxPlainID is the longest entry ID that goes into Nats-Msg-Id as it is; a longer one is
// hashed, so that what the servers remember per id stays small.
const maxPlainID = 64

// userMsgID maps an entry's ID to its Nats-Msg-Id, the same on every node: "u" + id when id
// is at most maxPlainID bytes of printable ASCII without a space (nor "nats-"), "h" + the base64 of its
// SHA-256 otherwise. The prefixes keep both apart from each other and from the ids Append
// makes ("g…").
func userMsgID(id string) string {
	// nats-server 2.9 finds a header by the first occurrence of its name anywhere in the
	// header block and, if that is not at a line's start, takes the header as absent: an
	// id holding "Nats-Expected-Last-Sequence" would turn a writer's fencing off. No plain
	// id holds "nats-" in any case.
	if len(id) <= maxPlainID && !strings.Contains(strings.ToLower(id), "nats-") {
		plain := true
		for i := range len(id) {
			if c := id[i]; c <= ' ' || c > '~' {
				plain = false
				break
			}
		}
		if plain {
			return "u" + id
		}
	}
	sum := sha256.Sum256([]byte(id))
	return "h" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Writer appends to a log for the node that holds its source's lease, fenced: each message
// carries Nats-Expected-Last-Sequence, the sequence of the one before it, so the log stores
// it only if nothing else was appended since. A holder that was paused past its lease and
// resumes after another node took over is stopped by its lease's clock before it sends
// anything (held), and if it was paused between that check and its send, by the log: the
// first message of each Append goes alone, and is refused if another node appended.
//
// One case is left, and detected, not prevented: a holder paused for longer than its lease
// between its clock check and the send of the pipelined rest of one Append, while the new
// holder appends exactly then, can have part of that batch stored after the new holder's
// first messages. Both writers then find a message of the other's (ErrStale): the old one
// stops; the new one, whose lease Held still says true, makes a new Writer and goes on.
// Nothing is lost, messages are at least once, and the log's order is the one every node
// serves.
//
// A Writer belongs to one goroutine, the holder's.
type Writer struct {
	log  *Log
	last uint64
	held func() bool
}

// Writer returns a Writer that expects the log to end where it ends now. held, if not nil,
// is asked before every Append (Lease.Held): once it says false, Append returns
// ErrLeaseLost without sending anything, which spares the round trip that fencing would
// refuse and stops a holder whose clock says its lease ran out even where nothing was
// appended since. ErrNoLog: the stream does not exist.
func (l *Log) Writer(ctx context.Context, held func() bool) (*Writer, error) {
	info, err := l.Info(ctx)
	if err != nil {
		return nil, err
	}
	return &Writer{log: l, last: info.Last, held: held}, nil
}

// Last is the log's last sequence as the Writer knows it: its last append's, or where the
// log ended when the Writer was made.
func (w *Writer) Last() uint64 { return w.last }

// Append stores entries after the log's last message, in order with none between them, and
// returns their sequences, as Log.Append does; the log's order is exactly the entries'. What
// JetStream could not store for a passing reason is sent again with the same ids; an entry
// whose ack was lost is found in the log by its id and not sent again.
//
// A *StaleError (errors.Is ErrStale) says that the log holds a message this Writer did not
// append: another node holds the source. ErrLeaseLost says held turned false. On any error,
// acks holds what was stored (Seq 0 for the rest) and the Writer must not be used again.
func (w *Writer) Append(ctx context.Context, entries []Entry) ([]Ack, error) {
	acks := make([]Ack, len(entries))
	if len(entries) == 0 {
		return acks, nil
	}
	l := w.log
	ids := make([]string, len(entries))
	data := make([][]byte, len(entries))
	for i, e := range entries {
		ids[i] = l.msgID(e.ID)
		data[i] = appendEnvelope(make([]byte, 0, envelopeSize(e.Msg)), e.Msg)
	}
	done := 0 // entries[:done] are stored
	wait := retryFirst
	probe := true
	for done < len(entries) {
		if w.held != nil && !w.held() {
			return acks, ErrLeaseLost
		}
		// Each message expects the log to end with the one before it, by sequence, assuming
		// each is stored as a new message. After a refusal, only one message goes: by
		// sequence alone, a pipelined message could be stored in another writer's place
		// (if the first, expecting w.last, was refused because another writer appended
		// one message, the second, expecting w.last+1, finds that message last and is
		// stored). One message alone, accepted, shows that nobody else appended since
		// w.last; the rest then go pipelined. (Nats-Expected-Last-Msg-Id would chain
		// them, but a replicated stream that refuses one at apply time stops answering
		// for seconds: nats-server 2.15.3.) So every Append begins with one message, the
		// probe, unless its last round went through.
		n := len(entries) - done
		if probe {
			n = 1
		}
		msgs := make([]*natsgo.Msg, n)
		todo := make([]int, n)
		for k := range msgs {
			i := done + k
			h := natsgo.Header{
				hdrMsgID:      {ids[i]},
				hdrExpectLast: {strconv.FormatUint(w.last+uint64(k), 10)},
			}
			msgs[k] = &natsgo.Msg{Subject: l.subject, Data: data[i], Header: h}
			todo[k] = k
		}
		results := l.publish(ctx, msgs, todo)
		var failed error
		for k, r := range results {
			if r.err != nil {
				failed = r.err
				break
			}
			acks[done] = Ack{Seq: r.ack.Sequence, Duplicate: r.ack.Duplicate}
			done++
			if !r.ack.Duplicate {
				w.last = r.ack.Sequence
			} else if k < len(results)-1 {
				break // the ones after it expected one more: they fail, and go again
			}
		}
		if failed == nil {
			// Done, or a duplicate made the rest expect too much: send them again.
			probe = false
			continue
		}
		probe = true
		if ctx.Err() != nil {
			return acks, ctx.Err()
		}
		if !retryable(failed) && !wrongLastSeq(failed) {
			return acks, fmt.Errorf("cluster: append to %s: %w", l.stream, failed)
		}
		// Some of what failed may be stored all the same (an ack lost with a leader), and
		// messages after it then too: read the log past w.last, and take every message of
		// ours, in order, as acked. A message that is not ours: another writer.
		n, err := w.reconcile(ctx, ids[done:], acks[done:])
		done += n
		if err != nil {
			return acks, err
		}
		if n == 0 {
			if err := sleep(ctx, wait); err != nil {
				return acks, err
			}
			wait = min(2*wait, retryMax)
		}
	}
	return acks, nil
}

// reconcileWait bounds each JetStream API request of a reconciliation: a request sent while the
// servers elect a leader can go unanswered, and Append's ctx may be long.
const reconcileWait = 5 * time.Second

// reconcile reads the log after w.last. Each message there must be the next of ids (ours,
// stored without our seeing the ack): it is acked, and w.last moves past it. It returns how
// many of ids it found, or a *StaleError at the first message that is not ours. A request
// left unanswered for reconcileWait, or refused for a passing reason, ends it early with what
// it found and no error: Append sends again, with the same ids, and reconciles again.
func (w *Writer) reconcile(ctx context.Context, ids []string, acks []Ack) (int, error) {
	l := w.log
	rctx, cancel := context.WithTimeout(ctx, reconcileWait)
	defer cancel()
	passing := func(err error) bool {
		return ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || retryable(err))
	}
	s, err := l.c.js.Stream(rctx, l.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return 0, ErrNoLog
	case err != nil && passing(err):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("cluster: stream %s: %w", l.stream, err)
	}
	info := toInfo(s.CachedInfo())
	if info.Last < w.last {
		return 0, &StaleError{Expected: w.last, Last: info.Last} // the log was reset
	}
	n := 0
	for seq := w.last + 1; seq <= info.Last; seq++ {
		if n == len(ids) {
			return n, &StaleError{Expected: w.last, Last: info.Last}
		}
		m, err := s.GetMsg(rctx, seq)
		if err != nil {
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				// Gone already (max_msgs, max_bytes): whose it was cannot be told.
				return n, &StaleError{Expected: w.last, Last: info.Last}
			case passing(err):
				return n, nil
			}
			return n, fmt.Errorf("cluster: stream %s: read %d: %w", l.stream, seq, err)
		}
		if m.Header.Get(hdrMsgID) != ids[n] {
			return n, &StaleError{Expected: w.last, Last: info.Last}
		}
		acks[n] = Ack{Seq: seq}
		n++
		w.last = seq
	}
	return n, nil
}
