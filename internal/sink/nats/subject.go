package nats

import (
	"errors"
	"fmt"
	"strings"
)

// maxSubject bounds a subject so that its PUB line fits the server's default max_control_line
// (4 KiB) with the reply subject and the sizes.
const maxSubject = 3800

// checkSubject returns why s is not a subject to publish to, nil if it is one: non-empty,
// tokens separated by single dots, no whitespace or control characters, no wildcard (* or >,
// which in a published subject would not mean what they mean to a subscriber).
func checkSubject(s string) error {
	switch {
	case s == "":
		return errors.New("it is empty")
	case len(s) > maxSubject:
		return fmt.Errorf("it is %d bytes long, over %d", len(s), maxSubject)
	case s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, ".."):
		return errors.New("it has an empty token (a leading, trailing or double dot)")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '*' || c == '>':
			return fmt.Errorf("it has the wildcard %q", c)
		case c <= ' ' || c == 0x7f:
			return fmt.Errorf("it has whitespace or a control character (%q)", c)
		}
	}
	return nil
}

// validHeaderName reports whether NATS carries a header of name k: printable ASCII, no space,
// none of the characters nats.go refuses in a name.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < 33 || c > 126 || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
