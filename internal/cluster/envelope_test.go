package cluster

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/stream"
)

// awkward are strings that NATS headers cannot carry as they are: names the servers act on,
// the same name in another case, separators, line breaks, NUL, invalid UTF-8, spaces at the
// ends, the empty string.
var awkward = []string{
	"", "Nats-Msg-Id", "nats-msg-id", "NATS-MSG-ID", "Nats-Expected-Last-Sequence", "Nats-Expected-Stream",
	"Nats-Rollup", "Status", "Description", "a:b", "a: b", " lead", "trail ", "two\r\nlines", "\n", "\r",
	"NATS/1.0 404", "\x00", "\xff\xfe", "é", "\r\nNats-Msg-Id: forged\r\n", "x\r\n\r\nbody",
}

// randomString is sometimes awkward, sometimes random bytes of any value.
func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return awkward[r.IntN(len(awkward))]
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

// RandomMessage is a message of random key, headers, body and time, with awkward strings
// among them. Exported to the package's tests only.
func RandomMessage(r *rand.Rand) *stream.Message {
	m := &stream.Message{Key: randomString(r), Body: []byte(randomString(r))}
	if r.IntN(4) > 0 {
		m.Headers = map[string]string{}
		for range r.IntN(8) {
			m.Headers[randomString(r)] = randomString(r)
		}
	}
	if r.IntN(5) > 0 {
		m.Time = time.Unix(0, r.Int64N(4e18)-2e18).UTC()
	}
	m.BodyIsJSON = r.IntN(2) == 0
	if r.IntN(10) == 0 {
		m.Body = bytes.Repeat([]byte("x\r\n"), r.IntN(100000))
	}
	return m
}

// SameMessage reports whether a and b have the same key, headers (nil and empty alike),
// body, JSON flag and time.
func SameMessage(a, b *stream.Message) bool {
	return a.Key == b.Key && len(a.Headers) == len(b.Headers) && maps.Equal(a.Headers, b.Headers) &&
		bytes.Equal(a.Body, b.Body) && a.BodyIsJSON == b.BodyIsJSON && a.Time.Equal(b.Time) && a.Time.IsZero() == b.Time.IsZero()
}

func TestEnvelopeRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		m := RandomMessage(r)
		enc := appendEnvelope(nil, m)
		if len(enc) > envelopeSize(m) {
			t.Fatalf("envelope of %d bytes, bound %d", len(enc), envelopeSize(m))
		}
		if !isEnvelope(enc) {
			t.Fatal("not an envelope")
		}
		var got stream.Message
		if err := decodeEnvelope(enc, &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !SameMessage(m, &got) {
			t.Fatalf("round trip:\n%#v\n%#v", m, &got)
		}
		// One message, one encoding, whatever the map's order.
		if again := appendEnvelope(nil, &got); !bytes.Equal(again, enc) {
			t.Fatal("encoded twice, two encodings")
		}
	}
}

func TestEnvelopeRefusesCorruption(t *testing.T) {
	m := &stream.Message{Key: "k", Headers: map[string]string{"a": "1", "b": "2"}, Body: []byte("body"), Time: time.Unix(1, 0)}
	enc := appendEnvelope(nil, m)
	for cut := len(envMagic); cut < len(enc)-len("body"); cut++ {
		var got stream.Message
		if err := decodeEnvelope(enc[:cut], &got); err == nil {
			t.Errorf("cut at %d: decoded %#v", cut, &got)
		}
	}
	// Headers out of order, or a name twice, are not streamux's.
	swapped := bytes.Replace(enc, []byte("\x01a\x011\x01b\x012"), []byte("\x01b\x012\x01a\x011"), 1)
	if bytes.Equal(swapped, enc) {
		t.Fatal("test broken: no swap")
	}
	if err := decodeEnvelope(swapped, &stream.Message{}); err == nil {
		t.Error("headers out of order decoded")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		f.Add(appendEnvelope(nil, RandomMessage(r)))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if !isEnvelope(payload) {
			return
		}
		var m stream.Message
		if err := decodeEnvelope(payload, &m); err != nil {
			return
		}
		// What decodes is exactly one message's envelope.
		if again := appendEnvelope(nil, &m); !bytes.Equal(again, payload) {
			t.Fatalf("decoded %#v, which encodes to %q, not %q", &m, again, payload)
		}
	})
}
