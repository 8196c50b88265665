package amqp

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The named places of Config.Offset.
const (
	// OffsetFirst reads a stream from the oldest message it keeps.
	OffsetFirst = "first"
	// OffsetLast reads a stream from its last chunk (a batch of messages written together),
	// so the last few messages come first.
	OffsetLast = "last"
	// OffsetNext reads only what is written to the stream from the moment the source
	// consumes: RabbitMQ's default.
	OffsetNext = "next"
)

// The broker's headers of a delivery from a stream or a quorum queue, which become the
// HeaderStreamOffset and HeaderDeliveryCount headers.
const (
	argStreamOffset   = "x-stream-offset"
	argDeliveryCount  = "x-delivery-count"
	streamOffsetUnset = -1
)

// offset is a parsed Config.Offset: a named place, an offset, or a time.
type offset struct {
	name string    // first, last, next; "" for at or from
	at   int64     // an offset, when name is "" and from is zero
	from time.Time // a time, when name is ""
}

// parseOffset parses what Config.Offset may hold.
func parseOffset(s string) (offset, error) {
	switch s {
	case OffsetFirst, OffsetLast, OffsetNext:
		return offset{name: s}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return offset{}, fmt.Errorf("offset %d: an offset is 0 or more", n)
		}
		return offset{at: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return offset{from: t}, nil
	}
	return offset{}, fmt.Errorf("offset %q: want first, last, next, an offset (0 or more) or an RFC 3339 time (2026-11-25T16:00:00Z)", s)
}

// arg is the offset as the x-stream-offset argument of basic.consume: a string for a named
// place, a long for an offset, a timestamp (whole seconds) for a time.
func (o offset) arg() any {
	switch {
	case o.name != "":
		return o.name
	case !o.from.IsZero():
		return o.from
	}
	return o.at
}

func (o offset) String() string {
	switch {
	case o.name != "":
		return o.name
	case !o.from.IsZero():
		return o.from.Format(time.RFC3339Nano)
	}
	return strconv.FormatInt(o.at, 10)
}

// position is what a stream source records in its store (source.Store): the offset of the last
// message its router took from the queue, or beforeFirst.
type position struct {
	Queue  string `json:"queue"`
	Offset int64  `json:"offset"`
}

// beforeFirst is the recorded offset of a stream that is to be read from its first message:
// made anew while the source had a place in the old one, and nothing taken from it yet.
const beforeFirst = -1

// decodePosition reads a record made by encodePosition; a record of another queue (the source
// was pointed at another stream) is none.
func decodePosition(b []byte, queue string) (int64, bool, error) {
	if len(b) == 0 {
		return 0, false, nil
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return 0, false, fmt.Errorf("a damaged record %q: %w", b, err)
	}
	if p.Queue != queue || p.Offset < beforeFirst {
		return 0, false, nil
	}
	return p.Offset, true, nil
}

func encodePosition(queue string, off int64) []byte {
	b, _ := json.Marshal(position{Queue: queue, Offset: off}) // a string and a number: never fails
	return append(b, '\n')
}

// fieldInt reads an integer header the broker set (a long, but any integer type will do).
func fieldInt(t amqp091.Table, key string) (int64, bool) {
	switch v := t[key].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case int:
		return int64(v), true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		if v <= 1<<63-1 {
			return int64(v), true
		}
	}
	return 0, false
}
