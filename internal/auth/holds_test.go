package auth

import (
	"testing"
	"time"
)

// After a reload, a key still in the configuration as it was is held; one removed, renamed or
// with other rights is not; a JWT's principal always is.
func TestHolds(t *testing.T) {
	t.Parallel()
	key := APIKey{Name: "reader", SHA256: HashKey("k1"), Sources: []string{"a"}}
	other := APIKey{Name: "other", SHA256: HashKey("k2")}
	before := newAuth(t, Config{APIKeys: []APIKey{key, other}}, time.Time{})
	p, err := before.Authenticate(bearer("k1"))
	if err != nil {
		t.Fatal(err)
	}
	wider, renamed := key, key
	wider.Sources = nil // every source: not the same rights as [a]
	renamed.Name = "renamed"
	for _, tc := range []struct {
		name string
		keys []APIKey
		want bool
	}{
		{"unchanged", []APIKey{other, key}, true},
		{"removed", []APIKey{other}, false},
		{"rights changed", []APIKey{wider}, false},
		{"renamed", []APIKey{renamed}, false},
	} {
		after := newAuth(t, Config{APIKeys: tc.keys}, time.Time{})
		if got := after.Holds(p); got != tc.want {
			t.Errorf("%s: Holds = %v, want %v", tc.name, got, tc.want)
		}
	}
	if (*Authenticator)(nil).Holds(p) {
		t.Error("a nil Authenticator holds an API key")
	}
	if !newAuth(t, Config{APIKeys: []APIKey{other}}, time.Time{}).Holds(&Principal{Name: "sub", Method: MethodJWT}) {
		t.Error("a JWT's principal is not held")
	}
}
