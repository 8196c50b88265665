package cluster_test

import (
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/streamux/streamux/internal/cluster"
)

// sourceNameBytes are the bytes a source's name may hold.
const sourceNameBytes = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

func randomName(r *rand.Rand) string {
	b := make([]byte, 1+r.IntN(64))
	for i := range b {
		b[i] = sourceNameBytes[r.IntN(len(sourceNameBytes))]
	}
	return string(b)
}

// A token is a valid stream name, subject token and KV key, reads back to its name, and no
// two names share one.
func TestEscapeNameIsSafeAndInjective(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9_-]{1,192}$`)
	for name, want := range map[string]string{"orders": "orders", "orders.eu": "orders_2Eeu", "a_b": "a_5Fb", "a-b": "a-b", ".": "_2E"} {
		if got := cluster.EscapeName(name); got != want {
			t.Errorf("EscapeName(%q) = %q, want %q", name, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]string{}
	for range 20000 {
		// Short names over few bytes collide often unless the mapping is injective.
		name := randomName(r)
		if r.IntN(2) == 0 {
			name = name[:1+r.IntN(min(4, len(name)))]
			b := []byte(name)
			for i := range b {
				b[i] = "._a_5F"[r.IntN(6)]
			}
			name = string(b)
		}
		tok := cluster.EscapeName(name)
		if !safe.MatchString(tok) {
			t.Fatalf("EscapeName(%q) = %q: not a safe token", name, tok)
		}
		back, err := cluster.UnescapeName(tok)
		if err != nil || back != name {
			t.Fatalf("UnescapeName(%q) = %q, %v; want %q", tok, back, err, name)
		}
		if other, ok := seen[tok]; ok && other != name {
			t.Fatalf("%q and %q both escape to %q", name, other, tok)
		}
		seen[tok] = name
	}
	if n := len(cluster.StreamName(cluster.DefaultStreamPrefix, "................................................................")); n > 255 {
		t.Fatalf("the longest stream name is %d bytes", n)
	}
}

func TestUnescapeNameRefusesWhatEscapeNeverMakes(t *testing.T) {
	for _, tok := range []string{"a_", "a_2", "a_2e", "a_ZZ", "a.b", "a b"} {
		if _, err := cluster.UnescapeName(tok); err == nil {
			t.Errorf("UnescapeName(%q): no error", tok)
		}
	}
}
