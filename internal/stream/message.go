// Package stream defines the nouns every other package speaks: a Message that a source yields
// and the Event that clients receive, encoded once and shared by every recipient.
//
// A Message is written by one goroutine (its source, then its router, which assigns Seq) and is
// read-only once the router has published it: events, the history and replays share it freely.
package stream

import (
	"strconv"
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

	// ev is the message's event, which NewMessage encodes: it lives in the message so that
	// routing a message allocates only the encoded bytes.
	ev Event
	// enc is how ev carries the body, once encKnown: predicates read the body as its event
	// shows it without checking it again.
	enc      BodyEncoding
	encKnown bool
}

// BodyEncoding tells how the message's event carries its body: as NewMessage found it, or, before
// the message was encoded, as ClassifyBody finds it.
func (m *Message) BodyEncoding() BodyEncoding {
	if m.encKnown {
		return m.enc
	}
	return ClassifyBody(m.Body)
}

// ID returns the message's event id, "<source>:<seq>".
func (m *Message) ID() string {
	return m.Source + ":" + strconv.FormatUint(m.Seq, 10)
}
