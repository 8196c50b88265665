// Package template is the small template syntax of the broker sinks' names (a NATS subject, a
// Kafka topic and key, an AMQP routing key, a Redis channel or stream): literal text with
// placeholders in braces, filled from each message.
//
//	{key}          the message's key (routing key, subject, topic, Kafka key)
//	{source}       the name of the source it came from
//	{header.NAME}  the value of its header NAME; "" when it has none
//
// So "orders.{header.region}.{key}" makes orders.eu.created of a message with key "created"
// and the header region: eu. Nothing else is evaluated: a brace outside a placeholder, an
// unknown placeholder or an empty header name is an error of Parse, at configuration time, and
// rendering cannot fail; whether what it makes is a valid name is the sink's to check.
//
// Concurrency: a Template is immutable; any goroutine may render it.
package template

import (
	"errors"
	"fmt"
	"strings"

	"github.com/streamux/streamux/internal/stream"
)

// Template is a name made from a message. Create it with Parse.
type Template struct {
	src   string
	parts []part
}

// part is literal text, or a placeholder: a message field, or a header.
type part struct {
	lit    string
	field  field
	header string
}

type field uint8

const (
	literal field = iota
	key
	source
	header
)

// Parse returns the template of src.
func Parse(src string) (*Template, error) {
	t := &Template{src: src}
	rest := src
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf("a } without a { at %d", len(src)-len(rest)+open)
		}
		if open > 0 {
			t.parts = append(t.parts, part{lit: rest[:open]})
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] == '{' {
			return nil, fmt.Errorf("a { without a } at %d", len(src)-len(rest)+open)
		}
		name := rest[open+1 : open+1+end]
		switch {
		case name == "key":
			t.parts = append(t.parts, part{field: key})
		case name == "source":
			t.parts = append(t.parts, part{field: source})
		case strings.HasPrefix(name, "header."):
			h := strings.TrimPrefix(name, "header.")
			if h == "" {
				return nil, errors.New("{header.} names no header: write {header.NAME}")
			}
			t.parts = append(t.parts, part{field: header, header: h})
		default:
			return nil, fmt.Errorf("unknown placeholder {%s}: want {key}, {source} or {header.NAME}", name)
		}
		rest = rest[open+1+end+1:]
	}
	return t, nil
}

// MustParse is Parse for templates known to be valid; it panics on an error.
func MustParse(src string) *Template {
	t, err := Parse(src)
	if err != nil {
		panic(fmt.Sprintf("template %q: %v", src, err))
	}
	return t
}

// String returns the template as it was written.
func (t *Template) String() string { return t.src }

// Static reports whether the template has no placeholder: every message gets the same name.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.field != literal {
			return false
		}
	}
	return true
}

// Render returns the name of m.
func (t *Template) Render(m *stream.Message) string {
	if len(t.parts) == 1 && t.parts[0].field == literal {
		return t.parts[0].lit
	}
	return string(t.render(nil, func(p part) string { return value(p, m) }))
}

// Sample returns the name the template makes when every placeholder is "x": the literal text
// as it will stand in every name, for a sink to check at configuration time.
func (t *Template) Sample() string {
	return string(t.render(nil, func(part) string { return "x" }))
}

func (t *Template) render(b []byte, fill func(part) string) []byte {
	for _, p := range t.parts {
		if p.field == literal {
			b = append(b, p.lit...)
		} else {
			b = append(b, fill(p)...)
		}
	}
	return b
}

func value(p part, m *stream.Message) string {
	switch p.field {
	case key:
		return m.Key
	case source:
		return m.Source
	default:
		return m.Headers[p.header]
	}
}
