package template_test

import (
	"strings"
	"testing"

	"github.com/streamux/streamux/internal/sink/template"
	"github.com/streamux/streamux/internal/stream"
)

func TestRender(t *testing.T) {
	m := &stream.Message{Source: "orders", Key: "created", Headers: map[string]string{"region": "eu", "a.b": "c"}}
	for src, want := range map[string]string{
		"":                                 "",
		"fixed":                            "fixed",
		"{key}":                            "created",
		"orders.{header.region}.{key}":     "orders.eu.created",
		"{source}-{key}":                   "orders-created",
		"{header.a.b}/{header.missing}/x":  "c//x",
		"é {key} ü":                        "é created ü",
		"{header.region}{header.region}{}": "",
	} {
		tp, err := template.Parse(src)
		if src == "{header.region}{header.region}{}" {
			if err == nil {
				t.Errorf("%q parsed", src)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if got := tp.Render(m); got != want {
			t.Errorf("%q renders %q, want %q", src, got, want)
		}
		if tp.String() != src {
			t.Errorf("%q: String %q", src, tp.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	for src, want := range map[string]string{
		"orders.{key":     "a { without a } at 7",
		"orders.key}":     "a } without a { at 10",
		"{{key}}":         "a { without a } at 0",
		"{header.}":       "names no header",
		"{subject}":       "unknown placeholder {subject}",
		"{ key }":         "unknown placeholder { key }",
		"a.{key}.{body}":  "unknown placeholder {body}",
		"{key}{source}{}": "unknown placeholder {}",
	} {
		_, err := template.Parse(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

func TestStaticAndSample(t *testing.T) {
	if !template.MustParse("orders.all").Static() || template.MustParse("orders.{key}").Static() {
		t.Error("Static")
	}
	if s := template.MustParse("orders.{header.r}.{key}-{source}").Sample(); s != "orders.x.x-x" {
		t.Errorf("Sample %q", s)
	}
}

// Any text either parses, and renders its literal text and values in order, or is refused;
// nothing panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "{key}", "a.{header.b}.{source}", "{", "}", "{header.}", "x{key}y{key}z"} {
		f.Add(s)
	}
	m := &stream.Message{Source: "S", Key: "K", Headers: map[string]string{"b": "B"}}
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := template.Parse(src)
		if err != nil {
			return
		}
		got := tp.Render(m)
		if tp.Static() && got != src {
			t.Errorf("static %q renders %q", src, got)
		}
		if !strings.ContainsAny(src, "{}") && got != src {
			t.Errorf("%q renders %q", src, got)
		}
	})
}
