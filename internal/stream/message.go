// Package stream defines the nouns every other package speaks: a Message that a source yields
// and the Event that clients receive, encoded once and shared by every recipient.
//
// A Message is written by one goroutine (its source, then its router, which assigns Seq) and is
// read-only once the router has published it: events, the history and replays share it freely.
package stream

import (
	"strconv"
	"sync"
	"time"
)

// Message is one item read from a source.
type Message struct {
	// Source is the name of the source that produced the message.
	Source string
	// Seq is assigned by the source's router: 1, 2, 3, … with no holes. In a cluster it is
	// the log's sequence, which the router takes as it is (see router.Router.FromLog).
	Seq uint64
	// UpstreamID is the upstream's own name of the message, where it has one (an AMQP message-id,
	// a Kafka offset, an ingest Idempotency-Key or envelope "id"): in a cluster, the log
	// stores a message once per ID within its duplicate window, so a message the upstream
	// delivers again is not appended again. Not part of the event; "" for none.
	UpstreamID string
	// Key is the routing key, subject, topic or Kafka key; "" where the source has none.
	Key string
	// Headers are the message's string headers; nil means none.
	Headers map[string]string
	// Body is the raw payload. It is the message's own for as long as the message lives: the
	// history keeps it, and predicates read it again on a resume and in /v1/check, long
	// after its source has read on. It is never a slice of a buffer that anyone reads into
	// again (a scanner's, a client library's, a parser's): a source copies out of such a
	// buffer, and says at the point where it takes the bytes why they are the message's own.
	//
	// Once NewMessage has made the message's event, read the body with Payload, not here:
	// encoding the event, which happens on first use in whichever goroutine gets there first,
	// points Body at the compacted JSON (see Payload).
	Body []byte
	// BodyIsJSON says that Body is one valid JSON value in valid UTF-8 with no space outside
	// its strings, as a source that parsed and re-encoded it can vouch: the event then carries
	// it as is, without checking and compacting it again. Leave it false for anything else.
	BodyIsJSON bool
	// Time is when the source received the message; the router keeps it to the millisecond,
	// as events show it.
	Time time.Time
	// Lost, when not 0, makes this a notice, not a message: at this point the source
	// received Lost messages that it could not pass on (too large to keep). The router numbers
	// none of them and sends every subscription of the source a gap, since no one can know
	// whom they would have matched. The other fields are unused.
	Lost uint64
	// LostReason is the gap's reason for a Lost notice: GapTooLarge when empty.
	LostReason string

	// ev is the message's event, which NewMessage makes: it lives in the message so that
	// routing a message allocates at most the encoded bytes.
	ev Event
	// once encodes ev, on first use (encode): a message that no one receives, replays or
	// matches on its body is never encoded. Everything encode writes (ev's bytes, enc, Body)
	// is read through once, so whichever goroutine encodes, every reader sees it done.
	once sync.Once
	// enc is how ev carries the body: predicates read the body as its event shows it without
	// checking it again.
	enc BodyEncoding
	// footprint is what the event is charged for in the history (Event.Footprint), fixed when
	// it is made, so that the history takes off what it added whether or not it was encoded
	// meanwhile.
	footprint int
}

// BodyEncoding tells how the message's event carries its body, encoding the event if it is not
// yet. Before NewMessage, it is what ClassifyBody finds.
func (m *Message) BodyEncoding() BodyEncoding {
	if m.ev.Msg == nil {
		return ClassifyBody(m.Body)
	}
	m.once.Do(m.encode)
	return m.enc
}

// Payload returns the body as the message's event carries it, encoding the event if it is not
// yet: a JSON body compacted (the same value; the event's bytes hold the one copy), any other
// body as it was received. Before NewMessage, it is Body.
func (m *Message) Payload() []byte {
	if m.ev.Msg != nil {
		m.once.Do(m.encode)
	}
	return m.Body
}

// ID returns the message's event id, "<source>:<seq>".
func (m *Message) ID() string {
	return m.Source + ":" + strconv.FormatUint(m.Seq, 10)
}
