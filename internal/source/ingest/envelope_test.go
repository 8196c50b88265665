package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/stream"
)

// referenceEnvelope is the envelope parser as encoding/json reads it, with exact field names:
// the reference that the fastjson one must agree with.
func referenceEnvelope(b []byte, key string, headers map[string]string) (*stream.Message, error) {
	var env struct {
		Key          *string           `json:"key"`
		Headers      map[string]string `json:"headers"`
		Body         json.RawMessage   `json:"body"`
		BodyEncoding string            `json:"body_encoding"`
	}
	// The field names are exact: encoding/json would take "Body" for "body".
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) == nil {
		for name := range fields {
			switch name {
			case "key", "headers", "body", "body_encoding":
			default:
				return nil, fmt.Errorf("unknown field %q", name)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return nil, errors.New("trailing data") // not dec.More, which takes `{}}` whole
	}
	m := &stream.Message{Key: key, Headers: headers, Body: env.Body}
	if env.Key != nil {
		m.Key = *env.Key
	}
	if len(env.Headers) > 0 {
		m.Headers = maps.Clone(headers)
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		maps.Copy(m.Headers, env.Headers)
	}
	switch env.BodyEncoding {
	case "":
	case "base64":
		var s string
		if err := json.Unmarshal(env.Body, &s); err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		m.Body = raw
	default:
		return nil, fmt.Errorf("body_encoding %q", env.BodyEncoding)
	}
	return m, nil
}

func TestEnvelope(t *testing.T) {
	var p fastjson.Parser
	m, err := parseEnvelope(&p, []byte(`{"key":"k2","headers":{"b":"2","n":null},"body":{"a": [1, "x\u00e9"]}}`), "k", map[string]string{"a": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Key != "k2" || !maps.Equal(m.Headers, map[string]string{"a": "1", "b": "2", "n": ""}) || string(m.Body) != `{"a":[1,"x\u00e9"]}` {
		t.Fatalf("%q %v %s", m.Key, m.Headers, m.Body)
	}
	for _, bad := range []string{`{"key":1}`, `{"headers":{"a":1}}`, `{"headers":[]}`, `{"body":1,"x":2}`,
		`{"body":"!!","body_encoding":"base64"}`, `{"body_encoding":"base64"}`, `{"body":1,"body_encoding":"hex"}`, `{} {}`, `[]`, `{`} {
		if _, err := parseEnvelope(&p, []byte(bad), "", nil); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// Too deep for fastjson: one short sentence, not a phrase per level.
	deep := `{"body":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`
	if _, err := parseEnvelope(&p, []byte(deep), "", nil); err == nil || len(err.Error()) > 100 || !strings.Contains(err.Error(), "300 levels") {
		t.Errorf("nested 1000 deep: %.200v (%d bytes)", err, len(err.Error()))
	}
}

// The fastjson envelope parser accepts what encoding/json accepts and reads the same message
// from it (bodies compared as the events carry them: compacted), on valid UTF-8.
func FuzzEnvelopeDifferential(f *testing.F) {
	for _, s := range []string{
		`{"key":"a","body":1}`, `{"body":"/w==","body_encoding":"base64"}`, `{"headers":{"a":"1","a":"2"},"body":null}`,
		`{"key":null,"body":{"x":[1,2.5e3,"\u00e9\n"]}}`, `{"body":1}{}`, `{"body":NaN}`, `{}}`, `null`, `{"key":"a","key":"b"}`, "{\"body\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			// encoding/json replaces invalid UTF-8 in strings; fastjson keeps the bytes, and
			// the event carries them in base64: they are not vouched for as JSON.
			if m, err := parseEnvelope(&p, b, "k", nil); err == nil && m.BodyIsJSON && !utf8.Valid(m.Body) {
				t.Fatalf("%q: body %q, not UTF-8, is vouched for as JSON", b, m.Body)
			}
			return
		}
		defaults := map[string]string{"d": "0"}
		want, werr := referenceEnvelope(b, "k", defaults)
		got, gerr := parseEnvelope(&p, b, "k", defaults)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%s: encoding/json says %v, fastjson %v", b, werr, gerr)
		}
		if werr != nil {
			return
		}
		if got.Key != want.Key || !maps.Equal(got.Headers, want.Headers) {
			t.Fatalf("%s: key %q headers %v, want %q %v", b, got.Key, got.Headers, want.Key, want.Headers)
		}
		if g, w := compact(got.Body), compact(want.Body); g != w {
			t.Fatalf("%s: body %q, want %q", b, g, w)
		}
		if got.BodyIsJSON && (!json.Valid(got.Body) || compact(got.Body) != string(got.Body)) {
			t.Fatalf("%s: body %q is vouched for as compact JSON", b, got.Body)
		}
	})
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

// BenchmarkEnvelope is the cost of reading one envelope line of the size streamux-bench sends,
// against encoding/json's.
func BenchmarkEnvelope(b *testing.B) {
	line := []byte(`{"key":"k17","body":{"ts":1764086400000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	b.Run("fastjson", func(b *testing.B) {
		var p fastjson.Parser
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseEnvelope(&p, line, "", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := referenceEnvelope(line, "", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
