package redisstreams

import (
	"bytes"
	"encoding/json"
	"math/big"
	"regexp"
	"testing"
	"time"
	"unicode/utf8"

	goredis "github.com/redis/go-redis/v9"
)

// fields splits b at NUL bytes into names and values, alternately, as an entry's fields (a
// name given twice keeps its last value, as go-redis's map does).
func fields(b []byte) map[string]any {
	parts := bytes.Split(b, []byte{0})
	values := make(map[string]any, len(parts)/2)
	for i := 0; i+1 < len(parts); i += 2 {
		values[string(parts[i])] = string(parts[i+1])
	}
	return values
}

// Whatever an entry's fields are, the message carries them as configured: headers mode, the
// body field as the body and every other field as a header, but for the source's own; JSON
// mode, a valid JSON object of them all, exact where they are UTF-8.
func FuzzMessage(f *testing.F) {
	f.Add([]byte("body\x00{\"a\":1}\x00region\x00eu"), false, false, "", "")
	f.Add([]byte("type\x00order\x00amount\x0012.5\x00note\x00<a & \"b\">\n"), true, false, "", "type")
	f.Add([]byte("payload\x00p\x00redis_stream_id\x00spoof\x00\x00empty name"), false, true, "payload", "payload")
	f.Add([]byte("bad\x00\xff\xfe\x00\u2028\x00x\x00redis_stream_redelivered\x00no"), true, true, "", "bad")
	f.Fuzz(func(t *testing.T, blob []byte, asJSON, redelivered bool, bodyField, keyField string) {
		sh := shape{stream: "s", fields: FieldsHeaders, bodyField: bodyField, keyField: keyField}
		if sh.bodyField == "" {
			sh.bodyField = DefaultBodyField
		}
		if asJSON {
			sh.fields, sh.bodyField = FieldsJSON, ""
		}
		values := fields(blob)
		m := sh.message(goredis.XMessage{ID: "1-1", Values: values}, redelivered, time.Now())

		wantKey := "s"
		if keyField != "" {
			wantKey, _ = values[keyField].(string)
		}
		if m.Key != wantKey || m.UpstreamID != "s:1-1" {
			t.Fatalf("key %q, upstream id %q; want %q, s:1-1", m.Key, m.UpstreamID, wantKey)
		}
		own := 2
		if redelivered {
			own = 3
		}
		if r, ok := m.Headers[RedeliveredHeader]; m.Headers[StreamHeader] != "s" || m.Headers[IDHeader] != "1-1" || ok != redelivered || ok && r != "true" {
			t.Fatalf("the source's headers (redelivered %v): %v", redelivered, m.Headers)
		}
		if asJSON {
			checkJSON(t, m.Body, values)
			if len(m.Headers) != own {
				t.Fatalf("fields: json, headers %v: want only the source's", m.Headers)
			}
			return
		}
		wantBody, _ := values[sh.bodyField].(string)
		if string(m.Body) != wantBody {
			t.Fatalf("body %q, want %q", m.Body, wantBody)
		}
		n := own
		for k, v := range values {
			if k == sh.bodyField || k == StreamHeader || k == IDHeader || k == RedeliveredHeader {
				continue
			}
			n++
			if m.Headers[k] != v {
				t.Fatalf("header %q = %q, want %q", k, m.Headers[k], v)
			}
		}
		if len(m.Headers) != n {
			t.Fatalf("%d headers, want %d: %v", len(m.Headers), n, m.Headers)
		}
	})
}

// checkJSON checks that body is a JSON object with the names of values, each a string equal to
// its value where name and value are valid UTF-8 (JSON has no other text).
func checkJSON(t *testing.T, body []byte, values map[string]any) {
	t.Helper()
	var got map[string]string
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %q is not a JSON object of strings: %v", body, err)
	}
	exact := 0
	for k, v := range values {
		if !utf8.ValidString(k) || !utf8.ValidString(v.(string)) {
			continue
		}
		exact++
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("body %q: %q = %q (present %v), want %q", body, k, g, ok, v)
		}
	}
	if len(got) < exact || len(got) > len(values) {
		t.Fatalf("body %q has %d names, want %d", body, len(got), len(values))
	}
}

var startSyntax = regexp.MustCompile(`^([0-9]+)(?:-([0-9]+))?$`)

// checkStart accepts "$" and the ids of 64-bit parts, and nothing else.
func FuzzStart(f *testing.F) {
	for _, s := range []string{"$", "0", "0-0", "1-2", ">", "", "-", "1-", "-1", "+1", "1_0", "18446744073709551616", " 1", "1-2-3", "$$"} {
		f.Add(s)
	}
	max64 := new(big.Int).SetUint64(^uint64(0))
	fits := func(digits string) bool {
		n, ok := new(big.Int).SetString(digits, 10)
		return ok && n.Cmp(max64) <= 0
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := s == "$"
		if m := startSyntax.FindStringSubmatch(s); m != nil {
			want = fits(m[1]) && (m[2] == "" || fits(m[2]))
		}
		if got := checkStart(s) == nil; got != want {
			t.Fatalf("checkStart(%q) accepts: %v, want %v", s, got, want)
		}
	})
}
