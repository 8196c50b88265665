package nats

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestParseAck(t *testing.T) {
	for _, c := range []struct {
		reply          string
		delivered, seq uint64
		ok             bool
	}{
		{"$JS.ACK.ORDERS.streamux.1.42.40.1796621810850599643.7", 1, 42, true},
		{"$JS.ACK.hub.ACCHASH.ORDERS.streamux.3.42.40.1796621810850599643.7.r4nd0m", 3, 42, true},
		{"$JS.ACK.hub.ACCHASH.ORDERS.streamux.3.42.40.1796621810850599643.7", 3, 42, true}, // no random token
		{"$JS.ACK.ORDERS.streamux.1.42.40.1796621810850599643", 0, 0, false},               // 8 tokens
		{"$JS.ACK.hub.ACCHASH.ORDERS.streamux.1.42.40.1796621810850599643.7.x.y", 1, 42, true},
		{"$JS.ACK.a.b.c.d.1.42.40.5", 0, 0, false}, // 10 tokens: neither form
		{"$JS.ACK.ORDERS.streamux.x.42.40.1.7", 0, 0, false},
		{"$JS.ACK.ORDERS.streamux.1.-4.40.1.7", 0, 0, false},
		{"$JS.NAK.ORDERS.streamux.1.42.40.1.7", 0, 0, false},
		{"_INBOX.abc", 0, 0, false},
		{"", 0, 0, false},
	} {
		d, s, ok := parseAck(c.reply)
		if d != c.delivered || s != c.seq || ok != c.ok {
			t.Errorf("parseAck(%q) = %d, %d, %v; want %d, %d, %v", c.reply, d, s, ok, c.delivered, c.seq, c.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseAck("$JS.ACK.ORDERS.streamux.1.42.40.1796621810850599643.7") }); n != 0 {
		t.Errorf("parseAck allocates %v times", n)
	}
}

// A reply subject comes from the server, but parseAck must not trust it: whatever it is,
// parseAck does not panic, and what it accepts has the form of one, whose numbers it read.
func FuzzParseAck(f *testing.F) {
	f.Add("$JS.ACK.ORDERS.streamux.1.42.40.1796621810850599643.7", uint64(1), uint64(42))
	f.Add("$JS.ACK.hub.ACCHASH.ORDERS.streamux.3.42.40.1796621810850599643.7.r4nd0m", uint64(3), uint64(7))
	f.Add("$JS.ACK....", uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, reply string, delivered, seq uint64) {
		if d, s, ok := parseAck(reply); ok {
			n := strings.Count(reply, ".") + 1
			if !strings.HasPrefix(reply, ackPrefix) || (n != 9 && n < 11) {
				t.Errorf("parseAck(%q) accepted it: %d, %d", reply, d, s)
			}
		}
		for _, form := range []string{"$JS.ACK.S.C.%d.%d.1.2.3", "$JS.ACK.D.H.S.C.%d.%d.1.2.3.R"} {
			r := fmt.Sprintf(form, delivered, seq)
			if d, s, ok := parseAck(r); !ok || d != delivered || s != seq {
				t.Errorf("parseAck(%q) = %d, %d, %v", r, d, s, ok)
			}
		}
	})
}

func TestServerLosesGiveBack(t *testing.T) {
	for v, want := range map[string]bool{
		"2.9.10": true, "2.10.14": true, "2.10.15": false, "2.10.29": false, "2.11.0": false,
		"2.12.0-beta.1": false, "v2.15.3": false, "1.4.0": true, "3.0.0": false, "": true, "dev": true,
	} {
		if got := serverLosesGiveBack(v); got != want {
			t.Errorf("serverLosesGiveBack(%q) = %v, want %v", v, got, want)
		}
	}
}

// Whatever start says, parsing it does not panic, and what it accepts is one of the forms.
func FuzzParseStart(f *testing.F) {
	for _, s := range []string{"new", "all", "seq:1", "seq:0", "time:2026-01-02T15:04:05Z", "time:x", "seq:", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseStart(s)
		if err != nil {
			return
		}
		switch st.policy {
		case jetstream.DeliverNewPolicy, jetstream.DeliverAllPolicy:
			if s != StartNew && s != StartAll {
				t.Errorf("%q parsed as %v", s, st.policy)
			}
		case jetstream.DeliverByStartSequencePolicy:
			if !strings.HasPrefix(s, StartSeqPrefix) || st.seq == 0 {
				t.Errorf("%q parsed as sequence %d", s, st.seq)
			}
		case jetstream.DeliverByStartTimePolicy:
			if !strings.HasPrefix(s, StartTimePrefix) || st.time.IsZero() {
				t.Errorf("%q parsed as time %v", s, st.time)
			}
		default:
			t.Errorf("%q parsed as %v", s, st.policy)
		}
	})
}
