package cluster

import (
	"errors"
	"strings"
)

// EscapeName maps a source name to a token that JetStream accepts in a stream name, a
// subject and a KV key alike: letters, digits and '-' stay as they are; every other byte
// ('.', '_', and anything else) becomes '_' and its two upper-case hex digits. So
// "orders.eu" is "orders_2Eeu" and "a_b" is "a_5Fb".
//
// The mapping is injective: '_' appears only to begin an escape of exactly two digits, so
// UnescapeName reads every token back to the one name it came from, and no two source names
// share a stream. (A file store on a case-insensitive file system, as on macOS, would still
// put "Orders" and "orders" in one directory: that is the server's limit, not this
// mapping's.) Source names are [A-Za-z0-9._-]{1,64}, so a token is at most 192 bytes.
func EscapeName(name string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(name) + 8)
	for i := range len(name) {
		c := name[i]
		if c < 0x80 && nameByte(rune(c)) && c != '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// UnescapeName is EscapeName's inverse.
func UnescapeName(token string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c != '_' {
			if !nameByte(rune(c)) {
				return "", errors.New("cluster: not an escaped name: " + token)
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(token) {
			return "", errors.New("cluster: a cut escape in " + token)
		}
		hi, ok1 := unhex(token[i+1])
		lo, ok2 := unhex(token[i+2])
		if !ok1 || !ok2 {
			return "", errors.New("cluster: a bad escape in " + token)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// StreamName is the JetStream stream that holds the log of the source called name:
// prefix + EscapeName(name). Its one subject is the same string.
func StreamName(prefix, name string) string { return prefix + EscapeName(name) }

// LeaseBucket is the KV bucket that holds the leases: prefix + "LEASES". Its keys are
// EscapeName of the sources' names.
func LeaseBucket(prefix string) string { return prefix + "LEASES" }
