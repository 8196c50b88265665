package stream

import (
	"slices"
	"strconv"
	"sync"
	"time"
)

// Kind is the type of an event.
type Kind uint8

// The event types of API.md.
const (
	KindMessage Kind = iota
	KindGap
	KindStatus
)

// String returns the event type as it appears in the "type" field.
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindGap:
		return "gap"
	case KindStatus:
		return "status"
	}
	return "unknown"
}

// wsRoom is the room kept in front of the JSON for the largest server WebSocket frame header.
const wsRoom = 10

// Event is what a client receives. It is encoded once, when it is made or, for a message, when
// it is first read (NewMessage), and is immutable afterwards: every recipient, on every
// transport, shares the same bytes.
//
// The encoding is one buffer laid out as [WebSocket frame header][JSON]["\n"], so that the
// WebSocket frame, the JSON and the NDJSON line are all sub-slices of it.
type Event struct {
	Kind Kind
	// Source is the source the event is about.
	Source string
	// Msg is the message of a KindMessage event; nil for the others.
	Msg *Message

	buf   []byte
	frame int // where the WebSocket frame starts in buf
}

// NewMessage makes m's "message" event, which lives in m, so that routing a message allocates
// nothing but its encoding. The event is encoded on first use: the first read of its bytes
// (JSON, Line, WSFrame, Size), of the message's Payload or BodyEncoding, in whichever goroutine
// comes first; a message that no one receives, replays or matches on its body costs no encoding.
// m must not be shared yet: calling NewMessage again (on a message changed meanwhile) makes its
// event anew, to be encoded again.
func NewMessage(m *Message) *Event {
	m.ev = Event{Kind: KindMessage, Source: m.Source, Msg: m}
	m.once = sync.Once{}
	m.footprint = encodedCap(m)
	if !m.BodyIsJSON && !mayBeJSON(m.Body) {
		// The body as received stays beside the encoding, which carries it escaped or
		// in base64; a JSON body becomes the encoding's own (encode).
		m.footprint += cap(m.Body)
	}
	return &m.ev
}

// encodedCap is the room NewMessage's encoding of m is made with: enough unless its text needs
// escapes, or its body base64.
func encodedCap(m *Message) int {
	return wsRoom + 160 + len(m.Key) + len(m.Source) + len(m.Body) + headersLen(m.Headers)
}

// encode encodes m's event, once (m.once).
func (m *Message) encode() {
	b := make([]byte, wsRoom, encodedCap(m))
	b = append(b, `{"type":"message","id":`...)
	b = appendString(b, m.Source)
	b = append(b[:len(b)-1], ':') // reopen the string: the id is "<source>:<seq>"
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, '"')
	b = append(b, `,"source":`...)
	b = appendString(b, m.Source)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, `,"key":`...)
	b = appendString(b, m.Key)
	b = append(b, `,"time":"`...)
	b = AppendTime(b, m.Time)
	b = append(b, `","headers":{`...)
	// In the order of their names, not the map's, which differs from one encoding to the
	// next: a message has the same bytes in every event of it, on every node of a cluster.
	var small [16]string
	names := small[:0]
	for k := range m.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m.Headers[k])
	}
	b = append(b, `},"body":`...)
	start := len(b)
	if m.BodyIsJSON {
		b = append(b, m.Body...)
		m.enc = BodyJSON
	} else {
		b, m.enc = appendBody(b, m.Body)
	}
	end := len(b)
	b = append(b, '}')
	finish(&m.ev, b)
	if m.enc == BodyJSON {
		// The event carries a JSON body as the JSON itself, compacted: the same value, which
		// is all that predicates, replays and sinks read of it (Payload). Pointing the body
		// at it keeps one copy of the body instead of two for as long as the history holds
		// the message. The capacity ends with the body, so nothing appended to it can reach
		// the event's bytes (and nothing appends: a message is read-only once routed).
		m.Body = m.ev.buf[start:end:end]
		m.BodyIsJSON = true
	}
}

// Why a gap event was sent: its "reason" field.
const (
	// GapDropped: the subscription's queue was full under policy drop.
	GapDropped = "dropped"
	// GapHistory: the resume point is older than the history holds.
	GapHistory = "history"
	// GapTooLarge: the source received messages it could not pass on, too large to keep (a
	// websocket source's read_limit); they are announced to every subscription, as no one can
	// know whom they would have matched.
	GapTooLarge = "too_large"
	// GapRestart: messages after the resume point were numbered by an earlier run of the
	// server, whose history is gone with it.
	GapRestart = "restart"
	// GapUnknownID: the resume point is ahead of the source, so it comes from elsewhere (an
	// earlier run that kept no sequence numbers on disk, another data directory); what was
	// sent after it cannot be counted, and missed counts only what this run no longer holds.
	GapUnknownID = "unknown_id"
	// GapNotStored: in a cluster, messages the node reading the source upstream had taken
	// and could not append to the log (it lost the source's lease, or the servers failed),
	// from an upstream that will not deliver them again.
	GapNotStored = "not_stored"
)

// NewGap encodes a "gap" event: missed messages of source matched but were not delivered, for
// the reason given (one of the Gap constants).
func NewGap(source string, missed uint64, reason string) *Event {
	b := make([]byte, wsRoom, wsRoom+64+len(source)+len(reason))
	b = append(b, `{"type":"gap","source":`...)
	b = appendString(b, source)
	b = append(b, `,"missed":`...)
	b = strconv.AppendUint(b, missed, 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, reason)
	b = append(b, '}')
	return finish(&Event{Kind: KindGap, Source: source}, b)
}

// NewStatus encodes a "status" event: source changed to state; errText is the last error, if any.
func NewStatus(source, state, errText string) *Event {
	return newStatus(source, state, errText, "", false)
}

// NewLeaderStatus is the status event of a change of the node that reads source upstream, in a
// cluster: {"type":"status","source":…,"state":…,"leader":…}; leader "" is none.
func NewLeaderStatus(source, state, leader string) *Event {
	return newStatus(source, state, "", leader, true)
}

func newStatus(source, state, errText, leader string, withLeader bool) *Event {
	b := make([]byte, wsRoom, wsRoom+60+len(source)+len(state)+len(errText)+len(leader))
	b = append(b, `{"type":"status","source":`...)
	b = appendString(b, source)
	b = append(b, `,"state":`...)
	b = appendString(b, state)
	if errText != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, errText)
	}
	if withLeader {
		b = append(b, `,"leader":`...)
		b = appendString(b, leader)
	}
	b = append(b, '}')
	return finish(&Event{Kind: KindStatus, Source: source}, b)
}

// finish writes the WebSocket text frame header in front of the JSON and the newline after it.
func finish(e *Event, b []byte) *Event {
	n := len(b) - wsRoom
	var h [wsRoom]byte
	h[0] = 0x81 // FIN, text
	hl := 2
	switch {
	case n < 126:
		h[1] = byte(n)
	case n <= 0xFFFF:
		h[1] = 126
		h[2], h[3] = byte(n>>8), byte(n)
		hl = 4
	default:
		h[1] = 127
		for i := 0; i < 8; i++ {
			h[2+i] = byte(uint64(n) >> (56 - 8*i))
		}
		hl = 10
	}
	e.frame = wsRoom - hl
	copy(b[e.frame:], h[:hl])
	e.buf = append(b, '\n')
	return e
}

// Seq is the message's sequence number, 0 for events that are not messages.
func (e *Event) Seq() uint64 {
	if e.Msg == nil {
		return 0
	}
	return e.Msg.Seq
}

// encoded returns the event's encoding, making it first if the event is a message's that has
// not been encoded yet.
func (e *Event) encoded() []byte {
	if e.Msg != nil {
		e.Msg.once.Do(e.Msg.encode)
	}
	return e.buf
}

// JSON returns the event's JSON encoding. The bytes are shared: do not modify them.
func (e *Event) JSON() []byte {
	b := e.encoded()
	return b[wsRoom : len(b)-1]
}

// Line returns the JSON followed by a newline: one NDJSON line.
func (e *Event) Line() []byte { return e.encoded()[wsRoom:] }

// WSFrame returns the event as one complete, unmasked WebSocket text frame, as a server sends it.
func (e *Event) WSFrame() []byte {
	b := e.encoded()
	return b[e.frame : len(b)-1]
}

// Size is the memory the event's encoding holds, for queue limits by bytes.
func (e *Event) Size() int { return cap(e.encoded()) }

// Footprint is the memory the event keeps alive, as the history counts it: its encoding, and a
// message's body where the encoding does not hold it (text and binary bodies, which it carries
// escaped or in base64). For a message it is fixed when the event is made, from the room its
// encoding is made with, so that it does not change when the event is encoded later.
func (e *Event) Footprint() int {
	if e.Msg != nil {
		return e.Msg.footprint
	}
	return cap(e.buf)
}

// timeLayout is the layout of an event's "time": RFC 3339 in UTC, with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendTime appends t in UTC as RFC 3339 with milliseconds, as events carry it.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout) // RFC 3339 has four digits: let time say it its way
	}
	hour, minute, sec := t.Clock()
	b = append2(append2(b, year/100), year%100)
	b = append2(append(b, '-'), int(month))
	b = append2(append(b, '-'), day)
	b = append2(append(b, 'T'), hour)
	b = append2(append(b, ':'), minute)
	b = append2(append(b, ':'), sec)
	ms := t.Nanosecond() / 1e6
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// append2 appends n, from 0 to 99, in two digits.
func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

func headersLen(h map[string]string) int {
	n := 0
	for k, v := range h {
		n += len(k) + len(v) + 6
	}
	return n
}
