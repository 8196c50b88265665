package auth

import (
	"net/url"
	"strings"
)

// Redacted replaces a credential in what is logged.
const Redacted = "REDACTED"

// RedactQuery returns rawQuery with the value of every token parameter replaced by Redacted,
// for logs. Everything else is kept byte for byte. It errs on the side of hiding: a key is
// compared after unescaping (tok%65n is token) and case-insensitively, and ';' separates
// parameters as well as '&' (net/url refuses such pairs, so they are never used as credentials,
// but a client that sent one still sent a secret).
func RedactQuery(rawQuery string) string {
	var b strings.Builder
	rest := rawQuery
	for {
		part, sep := rest, ""
		i := strings.IndexAny(rest, "&;")
		if i >= 0 {
			part, sep, rest = rest[:i], rest[i:i+1], rest[i+1:]
		}
		if key, _, ok := strings.Cut(part, "="); ok && isTokenKey(key) {
			b.WriteString(key)
			b.WriteString("=" + Redacted)
		} else {
			b.WriteString(part)
		}
		b.WriteString(sep)
		if i < 0 {
			return b.String()
		}
	}
}

func isTokenKey(raw string) bool {
	k, err := url.QueryUnescape(raw)
	if err != nil {
		k = raw
	}
	return strings.EqualFold(strings.TrimSpace(k), "token")
}

// RedactURL returns u as a string for logs: the token parameter's value and any password
// replaced.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.RawQuery = RedactQuery(u.RawQuery)
	return c.Redacted()
}
