package amqp

import (
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestParseOffset(t *testing.T) {
	ts := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		arg     any    // the x-stream-offset argument
		wantErr string // a substring of the error; "" for none
	}{
		{"first", "first", ""},
		{"last", "last", ""},
		{"next", "next", ""},
		{"0", int64(0), ""},
		{"1234567", int64(1234567), ""},
		{"2026-11-25T16:00:00Z", ts, ""},
		{"2026-11-25T17:00:00+01:00", ts, ""},
		{"2026-11-25T16:00:00.5Z", ts.Add(500 * time.Millisecond), ""},
		{"-1", nil, "0 or more"},
		{"", nil, "want first, last, next"},
		{"First", nil, "want first, last, next"},
		{"2026-11-25", nil, "RFC 3339"},
		{"1h", nil, "want first"},
		{"99999999999999999999", nil, "want first"},
	}
	for _, tt := range tests {
		o, err := parseOffset(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "offset") {
				t.Errorf("parseOffset(%q) = %v, %v; want an error about the offset with %q", tt.in, o, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseOffset(%q): %v", tt.in, err)
			continue
		}
		arg := o.arg()
		if at, ok := arg.(time.Time); ok {
			if want, _ := tt.arg.(time.Time); !at.Equal(want) {
				t.Errorf("parseOffset(%q).arg() = %v, want %v", tt.in, at, want)
			}
		} else if arg != tt.arg {
			t.Errorf("parseOffset(%q).arg() = %#v, want %#v", tt.in, arg, tt.arg)
		}
		// Every argument is one AMQP can carry.
		if err := (amqp091.Table{argStreamOffset: arg}).Validate(); err != nil {
			t.Errorf("parseOffset(%q).arg() = %#v: %v", tt.in, arg, err)
		}
		if back, err := parseOffset(o.String()); err != nil || back.String() != o.String() {
			t.Errorf("parseOffset(%q).String() = %q does not read back: %v", tt.in, o.String(), err)
		}
	}
}

func TestPosition(t *testing.T) {
	b := encodePosition("orders", 41)
	if string(b) != "{\"queue\":\"orders\",\"offset\":41}\n" {
		t.Errorf("encodePosition = %q", b)
	}
	tests := []struct {
		rec     string
		queue   string
		off     int64
		ok      bool
		wantErr bool
	}{
		{string(b), "orders", 41, true, false},
		{string(b), "other", 0, false, false}, // the source now reads another stream
		{"", "orders", 0, false, false},
		{`{"queue":"orders","offset":-3}`, "orders", 0, false, false},
		{`{"queue":"orders","offset":-1}`, "orders", beforeFirst, true, false},
		{`{"queue":"orders","offset":0}`, "orders", 0, true, false},
		{`{"queue":"orders","off`, "orders", 0, false, true},
	}
	for _, tt := range tests {
		off, ok, err := decodePosition([]byte(tt.rec), tt.queue)
		if off != tt.off || ok != tt.ok || (err != nil) != tt.wantErr {
			t.Errorf("decodePosition(%q, %q) = %d, %v, %v", tt.rec, tt.queue, off, ok, err)
		}
	}
}

// The broker's headers of a stream or quorum queue become amqp_ properties, in decimal, and an
// application header of the same name does not shadow them.
func TestBrokerHeaders(t *testing.T) {
	d := amqp091.Delivery{Headers: amqp091.Table{
		"x-stream-offset": int64(1234), "x-delivery-count": int64(2), "amqp_stream_offset": "app's", "region": "eu",
	}}
	got := headers(&d)
	want := map[string]string{"amqp_stream_offset": "1234", "amqp_delivery_count": "2", "region": "eu", "amqp_redelivered": "false"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	for _, v := range []any{int64(7), int32(7), int16(7), int8(7), uint8(7), uint16(7), uint32(7), uint64(7)} {
		if n, ok := fieldInt(amqp091.Table{"k": v}, "k"); !ok || n != 7 {
			t.Errorf("fieldInt(%T) = %d, %v", v, n, ok)
		}
	}
	for _, v := range []any{nil, "7", 7.0, uint64(1) << 63} {
		if _, ok := fieldInt(amqp091.Table{"k": v}, "k"); ok {
			t.Errorf("fieldInt(%T %v) is an integer", v, v)
		}
	}
}
