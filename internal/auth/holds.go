package auth

import (
	"slices"
)

// Holds reports whether a, an Authenticator built after a reload of the configuration, still
// grants p, a principal that an earlier one authenticated, what it granted then: for an API
// key, that a holds the same key with the same name and rights (sources, write, where, admin,
// sinks, expiry). A key removed or changed is not held, and the streams it opened should end.
// A JWT or the anonymous principal is always held: a token carries its own rights, and the
// streams it opened end when it expires. A nil a holds no key.
func (a *Authenticator) Holds(p *Principal) bool {
	if p == nil || p.Method != MethodAPIKey {
		return true
	}
	if a == nil {
		return false
	}
	for i := range a.keys {
		k := &a.keys[i].principal
		if a.keys[i].sum == p.keySum {
			return k.Name == p.Name && slices.Equal(k.Sources, p.Sources) && (k.Sources == nil) == (p.Sources == nil) &&
				slices.Equal(k.Write, p.Write) && k.Where == p.Where && k.Admin == p.Admin && k.Sinks == p.Sinks &&
				k.Expires.Equal(p.Expires)
		}
	}
	return false
}
