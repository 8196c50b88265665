package httpapi

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestParseStreamParams(t *testing.T) {
	p, err := parseStreamParams(url.Values{"where": {`key == "a"`}, "source": {"a,b", " c "}, "from": {"a:3,b:4"}, "policy": {"drop"}}, "x:9")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.sources, "|") != "a|b|c" || p.from["a"] != 3 || p.from["b"] != 4 || len(p.from) != 2 || p.policy.String() != "drop" {
		t.Fatalf("%+v", p)
	}
	// Last-Event-ID counts only when from is absent.
	p, _ = parseStreamParams(url.Values{}, "orders:with:colons:12")
	if p.from["orders:with:colons"] != 12 {
		t.Fatalf("%+v", p.from)
	}
	if !p.fromHeader {
		t.Fatal("ids from Last-Event-ID are not marked as such")
	}
	// A header that cannot be read is no error (a browser would stop reconnecting): the
	// sources it names no good id of start over; an id given twice counts as the earlier.
	p, err = parseStreamParams(url.Values{}, "nocolon,a:5,a:3")
	if err != nil || !p.fromHeader || !p.fromUnknown || len(p.from) != 1 || p.from["a"] != 3 {
		t.Fatalf("bad Last-Event-ID: %+v, %v", p, err)
	}
	p.sources = []string{"a", "b"}
	p.resumeFrom()
	if p.from["a"] != 3 || p.from["b"] != resumeUnknown {
		t.Fatalf("resume points %v", p.from)
	}
	for _, q := range []url.Values{
		{"where": {"a", "b"}},
		{"source": {""}},
		{"from": {"a:1", "a:2"}},
		{"from": {"nocolon"}},
		{"from": {"a:-1"}},
		{"policy": {"DROP"}},
		{"policy": {"drop", "disconnect"}},
		{"batch": {"yes"}},
		{"batch": {"true", "false"}},
	} {
		if _, err := parseStreamParams(q, ""); err == nil || err.Status != 400 || err.Code != "invalid_parameter" {
			t.Errorf("%v: got %v", q, err)
		}
	}
}

func FuzzParseStreamParams(f *testing.F) {
	f.Add("where=key%3D%3D%22a%22&source=a,b&from=a:1&policy=drop", "b:2")
	f.Add("from=%3A%3A%3A1", "")
	f.Add("source=,,,&from=,", ":")
	f.Add("batch=true&batch=0", "")
	f.Fuzz(func(t *testing.T, rawQuery, lastEventID string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		p, aerr := parseStreamParams(q, lastEventID)
		if aerr != nil {
			if aerr.Status != 400 || aerr.Message == "" {
				t.Fatalf("error %+v", aerr)
			}
			return
		}
		for _, s := range p.sources {
			if s == "" {
				t.Fatal("empty source accepted")
			}
		}
		if len(p.sources) > maxListItems || !p.fromHeader && len(p.from) > maxListItems {
			t.Fatal("list limits not enforced")
		}
		if b := q.Get("batch"); p.batch != (b != "" && must(strconv.ParseBool(b))) {
			t.Fatalf("batch=%q parsed as %v", b, p.batch)
		}
	})
}

// must is v, whose error the caller knows to be nil.
func must[T any](v T, _ error) T { return v }
