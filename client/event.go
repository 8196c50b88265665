package client

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// The types of event a stream carries.
const (
	// TypeMessage is a message that satisfied the predicate.
	TypeMessage = "message"
	// TypeGap says that Missed matching messages of Source were not delivered, and why (Reason:
	// dropped, history, restart, unknown_id, too_large, not_stored).
	TypeGap = "gap"
	// TypeStatus says that Source changed state (State, Error).
	TypeStatus = "status"
)

// Event is one event of a stream, as the server sent it.
type Event struct {
	// Type is TypeMessage, TypeGap or TypeStatus.
	Type string `json:"type"`
	// ID is a message's id, "<source>:<seq>": what the subscription resumes after.
	ID     string `json:"id,omitempty"`
	Source string `json:"source"`
	Seq    uint64 `json:"seq,omitempty"`
	Key    string `json:"key,omitempty"`
	// Time is when the source received the message.
	Time    time.Time         `json:"time,omitzero"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the message's body as the event carries it: the JSON value itself, or a JSON
	// string (text, or base64 when BodyEncoding is "base64"). Data gives the bytes.
	Body         json.RawMessage `json:"body,omitempty"`
	BodyEncoding string          `json:"body_encoding,omitempty"`
	// Missed and Reason are a gap's.
	Missed uint64 `json:"missed,omitempty"`
	Reason string `json:"reason,omitempty"`
	// State and Error are a status's.
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
	// Raw is the event's JSON as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// Data returns a message's body as the source gave it: a JSON body's JSON text (compacted, as
// the server keeps it), a text body's text, a binary body's bytes.
func (e *Event) Data() ([]byte, error) {
	if len(e.Body) == 0 || e.Body[0] != '"' {
		return e.Body, nil
	}
	var s string
	if err := json.Unmarshal(e.Body, &s); err != nil {
		return nil, fmt.Errorf("client: the body of %s: %w", e.ID, err)
	}
	if e.BodyEncoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("client: the base64 body of %s: %w", e.ID, err)
		}
		return b, nil
	}
	return []byte(s), nil
}

// decodeEvent reads one event's JSON; raw is copied.
func decodeEvent(raw []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Event{}, fmt.Errorf("client: an event that is not JSON: %w", err)
	}
	if ev.Type == "" {
		return Event{}, fmt.Errorf("client: an event without a type: %.200s", raw)
	}
	ev.Raw = append(json.RawMessage(nil), raw...)
	return ev, nil
}
