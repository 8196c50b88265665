package amqp

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestStringify(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		in   any
		want string
	}{
		{nil, ""},
		{"text", "text"},
		{[]byte("utf-8 ✓"), "utf-8 ✓"},
		{[]byte{0xff, 0x00}, "/wA="},
		{true, "true"},
		{false, "false"},
		{int8(-5), "-5"},
		{int16(-300), "-300"},
		{int32(70000), "70000"},
		{int64(math.MinInt64), "-9223372036854775808"},
		{uint8(200), "200"},
		{uint16(65535), "65535"},
		{uint32(4294967295), "4294967295"},
		{float32(0.1), "0.1"},
		{float64(0.1), "0.1"},
		{1e21, "1e+21"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "+Inf"},
		{float32(math.Inf(-1)), "-Inf"},
		{amqp091.Decimal{Scale: 2, Value: 12345}, "123.45"},
		{amqp091.Decimal{Scale: 4, Value: 5}, "0.0005"},
		{amqp091.Decimal{Scale: 2, Value: -5}, "-0.05"},
		{amqp091.Decimal{Scale: 0, Value: -7}, "-7"},
		{amqp091.Decimal{Scale: 3, Value: math.MinInt32}, "-2147483.648"},
		{time.Date(2026, 11, 25, 17, 0, 0, 0, cet), "2026-11-25T16:00:00Z"},
		{amqp091.Table{}, "{}"},
		{[]any{}, "[]"},
		{
			amqp091.Table{
				"b": int32(1), "a": "x", "n": amqp091.Table{"t": true, "v": nil},
				"arr": []any{int64(1), "s", nil, math.NaN(), 2.5, []byte{0xff}},
				"d":   amqp091.Decimal{Scale: 1, Value: 15},
				"ts":  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
				"q":   "quote\" and \\ and \n",
			},
			`{"a":"x","arr":[1,"s",null,"NaN",2.5,"/w=="],"b":1,"d":1.5,"n":{"t":true,"v":null},"q":"quote\" and \\ and \n","ts":"2026-01-02T03:04:05Z"}`,
		},
	}
	for _, tt := range tests {
		if got := Stringify(tt.in); got != tt.want {
			t.Errorf("Stringify(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStringifyDeepNesting(t *testing.T) {
	var v any = "bottom"
	for range 100 {
		v = []any{v}
	}
	s := Stringify(v)
	if !json.Valid([]byte(s)) {
		t.Fatalf("not JSON: %.100s", s)
	}
}

func TestHeaders(t *testing.T) {
	ts := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	d := amqp091.Delivery{
		Headers:     amqp091.Table{"region": "eu", "n": int32(3), "amqp_type": "shadowed"},
		ContentType: "application/json", ContentEncoding: "gzip", DeliveryMode: 2, Priority: 5,
		CorrelationId: "c1", ReplyTo: "r", Expiration: "60000", MessageId: "m1", Timestamp: ts,
		Type: "order.created", UserId: "guest", AppId: "shop", Exchange: "orders", Redelivered: true,
	}
	want := map[string]string{
		"region": "eu", "n": "3",
		"amqp_content_type": "application/json", "amqp_content_encoding": "gzip",
		"amqp_delivery_mode": "2", "amqp_priority": "5", "amqp_correlation_id": "c1",
		"amqp_reply_to": "r", "amqp_expiration": "60000", "amqp_message_id": "m1",
		"amqp_timestamp": "2026-11-25T16:00:00Z", "amqp_type": "order.created",
		"amqp_user_id": "guest", "amqp_app_id": "shop", "amqp_exchange": "orders",
		"amqp_redelivered": "true",
	}
	got := headers(&d)
	if len(got) != len(want) {
		t.Errorf("got %d headers, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	// Nothing set: only amqp_redelivered.
	if got := headers(&amqp091.Delivery{}); len(got) != 1 || got["amqp_redelivered"] != "false" {
		t.Errorf("headers of an empty delivery = %v", got)
	}
}

// FuzzStringify builds AMQP field values of every type from the fuzzer's bytes and checks that
// stringifying never panics, that tables and arrays become valid JSON in valid UTF-8, and that
// numbers read back.
func FuzzStringify(f *testing.F) {
	f.Add([]byte{'F', 2, 'S', 3, 'a', 'b', 'c', 'l', 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{'A', 3, 'd', 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 'D', 2, 0, 0, 0x30, 0x39, 'x', 2, 0xff, 0xfe})
	f.Add([]byte{'T', 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'f', 0x7f, 0xc0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := gen{b: data}
		v := g.value(0)
		s := Stringify(v)
		switch v := v.(type) {
		case amqp091.Table, []any:
			if !json.Valid([]byte(s)) || !utf8.ValidString(s) {
				t.Fatalf("Stringify(%#v) = %q: not valid JSON", v, s)
			}
		case amqp091.Decimal:
			if !json.Valid([]byte(s)) {
				t.Fatalf("decimal %v = %q: not a number", v, s)
			}
			f, err := strconv.ParseFloat(s, 64)
			want := float64(v.Value) / math.Pow(10, float64(v.Scale))
			if err != nil || math.Abs(f-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Fatalf("decimal %v = %q, reads back as %v (%v), want %v", v, s, f, err, want)
			}
		case int64:
			if n, err := strconv.ParseInt(s, 10, 64); err != nil || n != v {
				t.Fatalf("int64 %d = %q", v, s)
			}
		case float64:
			if n, err := strconv.ParseFloat(s, 64); err != nil || (n != v && !math.IsNaN(v)) {
				t.Fatalf("float64 %v = %q", v, s)
			}
		}
	})
}

// gen turns bytes into AMQP field values, the way the wire's type tags would.
type gen struct{ b []byte }

func (g *gen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *gen) bytes(n int) []byte {
	n = min(n, len(g.b))
	p := g.b[:n]
	g.b = g.b[n:]
	return p
}

func (g *gen) u64() uint64 {
	var x [8]byte
	copy(x[:], g.bytes(8))
	return binary.BigEndian.Uint64(x[:])
}

func (g *gen) value(depth int) any {
	switch g.byte() {
	case 't':
		return g.byte()&1 == 1
	case 'B':
		return g.byte()
	case 'b':
		return int8(g.byte())
	case 's':
		return int16(g.u64())
	case 'u':
		return uint16(g.u64())
	case 'I':
		return int32(g.u64())
	case 'i':
		return uint32(g.u64())
	case 'l':
		return int64(g.u64())
	case 'f':
		return math.Float32frombits(uint32(g.u64() >> 32))
	case 'd':
		return math.Float64frombits(g.u64())
	case 'D':
		return amqp091.Decimal{Scale: g.byte(), Value: int32(g.u64() >> 32)}
	case 'S':
		return string(g.bytes(int(g.byte())))
	case 'x':
		return append([]byte(nil), g.bytes(int(g.byte()))...)
	case 'T':
		return time.Unix(int64(g.u64()>>1), 0)
	case 'A':
		n := int(g.byte() % 8)
		a := make([]any, 0, n)
		for range n {
			if depth < 64 {
				a = append(a, g.value(depth+1))
			}
		}
		return a
	case 'F':
		n := int(g.byte() % 8)
		t := amqp091.Table{}
		for range n {
			k := string(g.bytes(int(g.byte() % 16)))
			if depth < 64 {
				t[k] = g.value(depth + 1)
			}
		}
		return t
	case 'V':
		return nil
	}
	return string(g.bytes(4))
}
