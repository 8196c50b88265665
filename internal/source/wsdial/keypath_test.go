package wsdial

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

func TestParsePath(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Path
		err  bool
	}{
		{"channel", Path{"channel"}, false},
		{"data.symbol", Path{"data", "symbol"}, false},
		{"items.0.id", Path{"items", "0", "id"}, false},
		{`a\.b.c`, Path{"a.b", "c"}, false},
		{`a\\.b`, Path{`a\`, "b"}, false},
		{"", nil, true},
		{".a", nil, true},
		{"a.", nil, true},
		{"a..b", nil, true},
		{`a\`, nil, true},
		{`a\b`, nil, true},
	} {
		got, err := ParsePath(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("ParsePath(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParsePath(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestKey(t *testing.T) {
	var p fastjson.Parser
	for _, tt := range []struct {
		path, body, key string
		ok              bool
	}{
		{"channel", `{"channel":"trades","data":[]}`, "trades", true},
		{"data.symbol", `{"data":{"symbol":"BTC"}}`, "BTC", true},
		{"items.1", `{"items":["a","b"]}`, "b", true},
		{"n", `{"n":1e3}`, "1e3", true},
		{"n", `{"n":-0.50}`, "-0.50", true},
		{"b", `{"b":false}`, "false", true},
		{"x", `{"x":null}`, "", true},
		{"x", `{"x":{}}`, "", true},
		{"missing", `{"x":1}`, "", true},
		{"x.y", `{"x":"str"}`, "", true},
		{`a\.b`, `{"a.b":"dotted","a":{"b":"nested"}}`, "dotted", true},
		{"x", `{"x":"first","x":"second"}`, "first", true},
		{"x", `{"\u0078":"escaped key"}`, "escaped key", true},
		{"x", `not json`, "", false},
		{"x", ``, "", false},
		{"x", `{"x":1} trailing`, "", false},
	} {
		path, err := ParsePath(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		key, ok := path.Key(&p, []byte(tt.body))
		if key != tt.key || ok != tt.ok {
			t.Errorf("%s in %s = %q, %v; want %q, %v", tt.path, tt.body, key, ok, tt.key, tt.ok)
		}
	}
}

func TestReader(t *testing.T) {
	r := reader{limit: 8}
	for _, tt := range []struct {
		in  string
		err error
	}{
		{"", nil}, {"12345678", nil}, {"123456789", errTooLarge}, {strings.Repeat("z", 100000), errTooLarge}, {"abc", nil},
	} {
		got, err := r.read(&oneByte{strings.NewReader(tt.in)})
		if !errors.Is(err, tt.err) || (err == nil && string(got) != tt.in) {
			t.Errorf("read(%.20q) = %.20q, %v; want error %v", tt.in, got, err, tt.err)
		}
	}
	if cap(r.scratch) > 64 {
		t.Errorf("scratch grew to %d bytes for a limit of 8", cap(r.scratch))
	}
}

// oneByte reads one byte at a time, as a fragmented message may.
type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

// FuzzParsePath: whatever parses prints back to itself and parses to the same path.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"a", "a.b", `a\.b`, `a\\`, "0.1", ".", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("ParsePath(%q).String() = %q", s, p.String())
		}
		q, err := ParsePath(p.String())
		if err != nil || !slices.Equal(p, q) {
			t.Fatalf("round trip of %q: %q, %v", s, q, err)
		}
	})
}

// FuzzKey compares the key extraction with a reference built on encoding/json: any body
// encoding/json accepts yields the same key (first of duplicate names, numbers as written), and
// nothing panics on any input.
func FuzzKey(f *testing.F) {
	f.Add("data.symbol", []byte(`{"data":{"symbol":"BTC"}}`))
	f.Add("a.0", []byte(`{"a":[1.50,{"b":2}]}`))
	f.Add("x", []byte(`{"x":"dup","x":"second"}`))
	f.Add("k", []byte(`{"k":"\u00e9\n\"","k2":null}`))
	f.Add("k", []byte(`[{"k":true}]`))
	f.Add("a.+1", []byte(`{"a":["x","y"]}`))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		var parser fastjson.Parser
		key, ok := p.Key(&parser, body)
		want, wantOK := refKey(body, p)
		if !wantOK {
			return // encoding/json rejects it; fastjson may be more lenient
		}
		// Where the two differ by design: invalid UTF-8 and lone surrogates, which
		// encoding/json replaces with U+FFFD; nesting deeper than fastjson's limit.
		if !utf8.Valid(body) || bytes.Contains(bytes.ToLower(body), []byte(`\ud`)) || depth(body) > fastjson.MaxDepth-2 {
			return
		}
		if !ok || key != want {
			t.Fatalf("path %q in %q: got %q, %v; encoding/json says %q", path, body, key, ok, want)
		}
	})
}

// refKey is Path.Key written with encoding/json's tokenizer.
func refKey(body []byte, p Path) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, err := decode(dec)
	if err != nil {
		return "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", false
	}
	for _, name := range p {
		switch x := v.(type) {
		case []kv:
			var next any = missing{}
			for _, e := range x {
				if e.k == name {
					next = e.v
					break
				}
			}
			v = next
		case []any:
			i, err := strconv.Atoi(name) // as fastjson: "01" and "+1" are 1
			if err != nil || i < 0 || i >= len(x) {
				v = missing{}
			} else {
				v = x[i]
			}
		default:
			v = missing{}
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", true
}

type (
	kv struct {
		k string
		v any
	}
	missing struct{}
)

// decode reads one value, keeping objects' names in order (duplicates too).
func decode(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		var obj []kv
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decode(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, kv{k.(string), v})
		}
		_, err := dec.Token()
		return obj, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := decode(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	}
	return tok, nil
}

func depth(b []byte) int {
	d, m := 0, 0
	for _, c := range b {
		switch c {
		case '{', '[':
			d++
			m = max(m, d)
		case '}', ']':
			d--
		}
	}
	return m
}
