package wsdial

import (
	"errors"
	"fmt"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/poison"
)

// Path is a dotted path into a JSON document, naming the value that becomes a message's key:
// "channel", "data.symbol", "items.0.id" (a decimal number selects an array element, from 0). A dot or a
// backslash inside a name is escaped with a backslash: "a\.b" is the one field "a.b".
type Path []string

// ParsePath parses a dotted path. Empty names ("a..b", ".a", "a.") and a dangling backslash are
// errors.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, errors.New("empty path")
	}
	var (
		p   Path
		cur strings.Builder
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) || (s[i+1] != '.' && s[i+1] != '\\') {
				return nil, fmt.Errorf("path %q: a backslash escapes only a dot or a backslash", s)
			}
			i++
			cur.WriteByte(s[i])
		case '.':
			if cur.Len() == 0 {
				return nil, fmt.Errorf("path %q: empty name", s)
			}
			p = append(p, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() == 0 {
		return nil, fmt.Errorf("path %q: empty name", s)
	}
	return append(p, cur.String()), nil
}

// String returns the path in the form ParsePath reads.
func (p Path) String() string {
	var b strings.Builder
	for i, name := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(name); j++ {
			if name[j] == '.' || name[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(name[j])
		}
	}
	return b.String()
}

// Key returns the key that body yields at p: a string's value, a number as it is written, true
// or false; "" for null, an object, an array or nothing there. ok is false when body is not JSON.
// The parser is reused between calls (not concurrently); the key never refers to its memory:
// its values view fastjson's copy of body, which the next call overwrites, so the key is a
// string conversion (a copy) of them, and a poison build overwrites that copy on return.
func (p Path) Key(parser *fastjson.Parser, body []byte) (key string, ok bool) {
	key, ok = p.key(parser, body)
	poison.Parser(parser, body)
	return key, ok
}

func (p Path) key(parser *fastjson.Parser, body []byte) (key string, ok bool) {
	v, err := parser.ParseBytes(body)
	if err != nil {
		return "", false
	}
	v = v.Get(p...)
	if v == nil {
		return "", true
	}
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes()), true
	case fastjson.TypeNumber:
		return string(v.MarshalTo(nil)), true
	case fastjson.TypeTrue:
		return "true", true
	case fastjson.TypeFalse:
		return "false", true
	}
	return "", true
}
