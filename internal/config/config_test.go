package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/streamux/streamux/internal/sink/all"   // every sink type, as the server has them
	_ "github.com/streamux/streamux/internal/source/all" // every source type, as the server has them
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/source/demo"
	"github.com/streamux/streamux/internal/source/ingest"
	"github.com/streamux/streamux/internal/source/kafka"
	"github.com/streamux/streamux/internal/source/mqtt"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/source/wsdial"
)

// goTypeLeak matches the pieces of a Go type that yaml puts in its messages and that mean
// nothing to someone editing a YAML file.
var goTypeLeak = regexp.MustCompile(`struct \{|config\.|demo\.Config|ingest\.Config|yaml:\\?"|not found in type`)

// parseErr parses src with no environment and returns the error's text, failing if there is none.
func parseErr(t *testing.T, src string) string {
	t.Helper()
	c, err := Parse([]byte(src))
	if err == nil {
		t.Fatalf("Parse(%q) = %+v, want an error", src, c)
	}
	msg := err.Error()
	if goTypeLeak.MatchString(msg) {
		t.Errorf("the error shows Go types to the user:\n%s", msg)
	}
	return msg
}

func wantAll(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error does not contain %q:\n%s", p, msg)
		}
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	if c.Listen != "127.0.0.1:8080" {
		t.Errorf("Listen = %q, want 127.0.0.1:8080", c.Listen)
	}
	if len(c.Sources) != 1 {
		t.Fatalf("Sources = %+v, want one demo source", c.Sources)
	}
	s := c.Sources[0]
	if s.Name != "demo" || s.Type != "demo" {
		t.Errorf("source = %q of type %q, want demo of type demo", s.Name, s.Type)
	}
	if _, ok := s.Spec.(*demo.Config); !ok {
		t.Errorf("Spec is %T, want *demo.Config", s.Spec)
	}
	if c.History.MaxBytes != 64<<20 {
		t.Errorf("defaults: history.max_bytes %d, want 64 MiB", c.History.MaxBytes)
	}
	if c.Limits.PredicateMaxBytes != 4096 || c.History.Size != 10000 || c.ShutdownGrace != 10*time.Second {
		t.Errorf("defaults: predicate_max_bytes %d, history.size %d, shutdown_grace %v; want 4096, 10000, 10s",
			c.Limits.PredicateMaxBytes, c.History.Size, c.ShutdownGrace)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// An empty file, and one with only comments, is the embedded default.
func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "# nothing here\n", "---\n"} {
		c, err := Parse([]byte(src))
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if c.Listen != DefaultListen || len(c.Sources) != 1 || c.Sources[0].Name != "demo" {
			t.Errorf("Parse(%q) = listen %q, sources %+v; want the default", src, c.Listen, c.Sources)
		}
	}
}

func TestParseFull(t *testing.T) {
	t.Parallel()
	src := `
listen: 0.0.0.0:9000
sources:
  - name: events
    type: http
    max_body_bytes: 1024
    required: true
  - name: demo
    type: demo
    rate: 50
    payload: rich
    backoff:
      initial: 250ms
      max: 1m30s
limits:
  predicate_max_bytes: 1000
  queue_events: 64
history:
  size: 500
stream:
  heartbeat: 5s
shutdown_grace: 3s
`
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" {
		t.Errorf("Listen = %q", c.Listen)
	}
	if len(c.Sources) != 2 {
		t.Fatalf("Sources = %+v, want 2", c.Sources)
	}
	ev, dm := c.Sources[0], c.Sources[1]
	if ev.Name != "events" || ev.Type != "http" || !ev.Required {
		t.Errorf("sources[0] = %+v", ev)
	}
	if spec, ok := ev.Spec.(*ingest.Config); !ok || spec.MaxBodyBytes != 1024 {
		t.Errorf("sources[0].Spec = %#v, want *ingest.Config{MaxBodyBytes: 1024}", ev.Spec)
	}
	if dm.Name != "demo" || dm.Type != "demo" || dm.Required {
		t.Errorf("sources[1] = %+v", dm)
	}
	if spec, ok := dm.Spec.(*demo.Config); !ok || spec.Rate != 50 || spec.Payload != "rich" {
		t.Errorf("sources[1].Spec = %#v, want *demo.Config{Rate: 50, Payload: rich}", dm.Spec)
	}
	if dm.Backoff.Initial != 250*time.Millisecond || dm.Backoff.Max != 90*time.Second {
		t.Errorf("backoff = %+v, want 250ms and 1m30s", dm.Backoff)
	}
	if c.Limits.PredicateMaxBytes != 1000 || c.Limits.QueueEvents != 64 || c.History.Size != 500 ||
		c.Stream.Heartbeat != 5*time.Second || c.ShutdownGrace != 3*time.Second {
		t.Errorf("limits %+v, history %+v, stream %+v, grace %v", c.Limits, c.History, c.Stream, c.ShutdownGrace)
	}
}

func TestBackoffDurations(t *testing.T) {
	t.Parallel()
	ok := "sources:\n  - name: d\n    type: demo\n    backoff: {initial: 1s, max: 2m}\n"
	c, err := Parse([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Sources[0].Backoff; b.Initial != time.Second || b.Max != 2*time.Minute {
		t.Errorf("backoff = %+v, want 1s and 2m", b)
	}

	msg := parseErr(t, "sources:\n  - name: d\n    type: demo\n    backoff: {initial: -1s}\n")
	wantAll(t, msg, "sources[0] (d)", "backoff")

	msg = parseErr(t, "sources:\n  - name: d\n    type: demo\n    backoff: {initial: soon}\n")
	wantAll(t, msg, "sources[0] (d)", "soon")
}

func TestUnknownTopLevelField(t *testing.T) {
	t.Parallel()
	msg := parseErr(t, "listen: 127.0.0.1:9000\nlistne: 127.0.0.1:9001\n")
	wantAll(t, msg, "listne", "line 2")
}

func TestUnknownNestedField(t *testing.T) {
	t.Parallel()
	msg := parseErr(t, "limits:\n  predicate_max_byte: 10\n")
	wantAll(t, msg, "predicate_max_byte", "line 2")
}

func TestUnknownSourceField(t *testing.T) {
	t.Parallel()
	src := `sources:
  - name: ticks
    type: demo
    rate: 5
    rat: 3
`
	msg := parseErr(t, src)
	// The line is the file's, not the line within the source's re-encoded text.
	wantAll(t, msg, "rat", "ticks", "line 5")
	if strings.Contains(msg, "line 4") {
		t.Errorf("error names the wrong line:\n%s", msg)
	}

	// A field of another type is unknown too: max_body_bytes belongs to http sources.
	msg = parseErr(t, "sources:\n  - name: d\n    type: demo\n    max_body_bytes: 10\n")
	wantAll(t, msg, "max_body_bytes", "(d)")
}

func TestSourceType(t *testing.T) {
	t.Parallel()
	msg := parseErr(t, "sources:\n  - name: q\n    type: rabbit\n")
	wantAll(t, msg, `unknown type "rabbit"`, "demo", "http", "(q)")

	msg = parseErr(t, "sources:\n  - name: q\n")
	wantAll(t, msg, "type is required", "demo", "http", "(q)")

	// A key given twice: the file's lines, and the name still known.
	msg = parseErr(t, "sources:\n  - name: d\n    type: demo\n    rate: 1\n    rate: 2\n")
	wantAll(t, msg, `line 5: sources[0] (d): mapping key "rate" already defined at line 4`)
	if strings.Contains(msg, "name is required") {
		t.Errorf("a source with a name is said to have none:\n%s", msg)
	}
	msg = parseErr(t, "sources:\n  - name: [d]\n    type: demo\n")
	wantAll(t, msg, "sources[0]", "line 2")

	// A source that is not a mapping at all.
	msg = parseErr(t, "sources:\n  - demo\n")
	wantAll(t, msg, "sources[0]", "line 2")
}

func TestNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src string
		want      []string
	}{
		{"missing", "sources:\n  - type: demo\n", []string{"sources[0]", "name is required"}},
		{"space", "sources:\n  - name: my source\n    type: demo\n", []string{"sources[0] (my source)", "name must be"}},
		{"slash", "sources:\n  - name: a/b\n    type: demo\n", []string{"name must be"}},
		{"colon", "sources:\n  - name: a:b\n    type: demo\n", []string{"name must be"}},
		{"long", "sources:\n  - name: " + strings.Repeat("x", 65) + "\n    type: demo\n", []string{"name must be"}},
		{"twice", "sources:\n  - name: a\n    type: demo\n  - name: a\n    type: http\n", []string{"sources[1] (a)", `name "a" is used twice`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantAll(t, parseErr(t, tc.src), tc.want...)
		})
	}
	ok := "sources:\n  - name: A.b_c-9\n    type: demo\n  - name: " + strings.Repeat("x", 64) + "\n    type: http\n"
	if _, err := Parse([]byte(ok)); err != nil {
		t.Errorf("valid names refused: %v", err)
	}
}

// Every problem in a file is reported at once, so that fixing a config takes one round trip.
func TestEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	src := `listen: nohost
bogus: true
sources:
  - name: a
    type: demo
    rat: 3
  - name: b
    type: nope
  - name: c
    type: http
    extra: 1
  - name: bad name
    type: demo
    rate: -1
  - name: a
    type: http
history:
  size: -5
`
	msg := parseErr(t, src)
	wantAll(t, msg,
		"listen", // no port
		"bogus",  // unknown top-level field
		"rat",    // unknown field in a
		`line 8: sources[1] (b).type: unknown type "nope"`, // b, at its type
		"extra",                 // unknown field in c
		"sources[3] (bad name)", // index kept although earlier sources failed
		"name must be",
		"rate must be positive",
		`name "a" is used twice`,
		"history.size",
	)
	if n := strings.Count(msg, "\n") + 1; n < 9 {
		t.Errorf("want at least 9 problems, one a line; got %d:\n%s", n, msg)
	}
}

// A history too large to allocate is refused, not a crash at start (issue 16).
func TestHistoryBounds(t *testing.T) {
	t.Parallel()
	wantAll(t, parseErr(t, "history:\n  size: 1000000000000\n  max_bytes: -1\n"),
		"line 2: history.size: 1000000000000 is over the maximum of 10000000", "line 3: history.max_bytes: must be positive, not -1")
}

func TestValidateTypeSpecific(t *testing.T) {
	t.Parallel()
	msg := parseErr(t, "sources:\n  - name: d\n    type: demo\n    payload: fancy\n  - name: h\n    type: http\n    max_body_bytes: -1\n")
	wantAll(t, msg, "sources[0] (d)", `payload must be "simple" or "rich"`, "sources[1] (h)", "max_body_bytes must be positive")
}

func TestSyntaxError(t *testing.T) {
	t.Parallel()
	msg := parseErr(t, "listen: [unclosed\n")
	if !strings.Contains(msg, "line") {
		t.Errorf("a syntax error should say where: %s", msg)
	}
}

func TestParseEnv(t *testing.T) {
	t.Setenv("STREAMUX_TEST_PORT", "9123")
	t.Setenv("STREAMUX_TEST_RATE", "25")
	src := `listen: 127.0.0.1:${STREAMUX_TEST_PORT}
sources:
  - name: ${STREAMUX_TEST_NAME:-ticks}
    type: demo
    rate: ${STREAMUX_TEST_RATE:-1}
`
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9123" {
		t.Errorf("Listen = %q, want 127.0.0.1:9123", c.Listen)
	}
	if c.Sources[0].Name != "ticks" {
		t.Errorf("name = %q, want the default ticks", c.Sources[0].Name)
	}
	if r := c.Sources[0].Spec.(*demo.Config).Rate; r != 25 {
		t.Errorf("rate = %v, want 25 from the environment", r)
	}

	_, err = Parse([]byte("listen: ${STREAMUX_TEST_UNSET_A}:${STREAMUX_TEST_UNSET_B}\n"))
	if err == nil {
		t.Fatal("unset variables: no error")
	}
	wantAll(t, err.Error(), "STREAMUX_TEST_UNSET_A", "STREAMUX_TEST_UNSET_B")
}

// References are expanded in values only, after the YAML is parsed: a comment may name a
// variable that is not set, and a value from the environment is taken exactly as it is, with
// characters that would mean something to YAML written in place.
func TestParseEnvValuesOnly(t *testing.T) {
	token := `Bearer a #b: "c\d' *e {f} [g] &h !i`
	t.Setenv("STREAMUX_TEST_TOKEN", token)
	t.Setenv("STREAMUX_TEST_URL", "ws://127.0.0.1:9/feed")
	src := `# set STREAMUX_TEST_NOT_SET_EITHER, or ${STREAMUX_TEST_NOT_SET}, to …
sources:
  - name: up
    type: websocket
    url: ${STREAMUX_TEST_URL}   # ${STREAMUX_TEST_NOT_SET} here is a comment too
    headers:
      Authorization: ${STREAMUX_TEST_TOKEN}
      X-Quoted: "${STREAMUX_TEST_TOKEN}"
      X-Literal: 'a $${STREAMUX_TEST_TOKEN}'
`
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	spec := c.Sources[0].Spec.(*wsdial.Config)
	if spec.URL != "ws://127.0.0.1:9/feed" {
		t.Errorf("url = %q", spec.URL)
	}
	for _, h := range []string{"Authorization", "X-Quoted"} {
		if spec.Headers[h] != token {
			t.Errorf("%s = %q, want %q", h, spec.Headers[h], token)
		}
	}
	if got := spec.Headers["X-Literal"]; got != "a ${STREAMUX_TEST_TOKEN}" {
		t.Errorf("X-Literal = %q, want the escaped reference as text", got)
	}

	// A key is not expanded: this one stays as written, and is no header name.
	_, err = Parse([]byte(strings.Replace(src, "X-Literal:", "${STREAMUX_TEST_NOT_SET}:", 1)))
	if err == nil || strings.Contains(err.Error(), "environment variables") || !strings.Contains(err.Error(), `"${STREAMUX_TEST_NOT_SET}" is not a valid header name`) {
		t.Errorf("a reference in a key: %v", err)
	}
}

// A reference may stand where YAML would not take "${" as it is, in a flow collection; anchors,
// aliases and merge keys read as yaml reads them, unknown keys included.
func TestParseEnvFlowAliasesMerges(t *testing.T) {
	t.Setenv("STREAMUX_TEST_ORIGIN", "https://app.example")
	t.Setenv("STREAMUX_TEST_DELAY", "5ms")
	c, err := Parse([]byte(`allowed_origins: [${STREAMUX_TEST_ORIGIN}, "https://b.example"]
stream: {write_delay: ${STREAMUX_TEST_DELAY}}
limits: &l
  queue_events: 7
history:
  <<: {size: 42}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.AllowedOrigins, []string{"https://app.example", "https://b.example"}) || c.Stream.WriteDelay != 5*time.Millisecond {
		t.Errorf("origins %q, write_delay %v", c.AllowedOrigins, c.Stream.WriteDelay)
	}
	if c.Limits.QueueEvents != 7 || c.History.Size != 42 {
		t.Errorf("queue_events %d, history.size %d", c.Limits.QueueEvents, c.History.Size)
	}
	msg := parseErr(t, "tls: &t {cert: a, key: b}\nhistory: *t\n")
	wantAll(t, msg, `line 1: history: unknown field "cert"`, `line 1: history: unknown field "key"`)
	msg = parseErr(t, "history:\n  <<: {size: 1, sise: 2}\n")
	wantAll(t, msg, `line 2: history: unknown field "sise" (did you mean "size"?)`)
}

// A source may take its settings from another through an anchor and a merge key, and its
// unknown keys are found through them too.
func TestSourceAliasesAndMerges(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`sources:
  - &base
    name: a
    type: demo
    rate: 5
  - <<: *base
    name: b
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sources) != 2 || c.Sources[1].Name != "b" || c.Sources[1].Spec.(*demo.Config).Rate != 5 {
		t.Fatalf("sources %+v", c.Sources)
	}
	msg := parseErr(t, "sources:\n  - &base\n    name: a\n    type: demo\n    rat: 5\n  - <<: *base\n    name: b\n")
	wantAll(t, msg, `line 5: sources[0] (a): unknown field "rat"`, `line 5: sources[1] (b): unknown field "rat"`)
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "streamux.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:0\nsources:\n  - name: e\n    type: http\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:0" || len(c.Sources) != 1 || c.Sources[0].Type != "http" {
		t.Errorf("Load = %+v", c)
	}
	if want := filepath.Join(dir, "streamux-data"); c.DataDir != want {
		t.Errorf("data_dir = %q, want %q beside the file", c.DataDir, want)
	}
	for dd, want := range map[string]string{"memory": "memory", "state": filepath.Join(dir, "state"), "/var/lib/x": "/var/lib/x"} {
		p := filepath.Join(dir, "dd.yaml")
		if err := os.WriteFile(p, []byte("data_dir: "+dd+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if c, err := Load(p); err != nil || c.DataDir != want {
			t.Errorf("data_dir: %s: %q, %v; want %q", dd, c.DataDir, err, want)
		}
	}
	if Default().DataDir != "" {
		t.Errorf("the embedded default has a data directory")
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nlisen: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil {
		t.Fatal("Load(bad): no error")
	}
	wantAll(t, err.Error(), bad, "lisen")

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v, want an error naming the file", err)
	}
}

// expandAll is expand with its problems as one error, as Parse reports them.
func expandAll(raw []byte, lookup func(string) (string, bool)) ([]byte, error) {
	out, missing, nested := expand(raw, lookup)
	if err := expandErr(missing, nested); err != nil {
		return nil, err
	}
	return out, nil
}

func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A": "alpha", "EMPTY": "", "B_2": "b"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"${A}", "alpha"},
		{"x${A}y${B_2}z", "xalphaybz"},
		{"${A:-d}", "alpha"},
		{"${NOPE:-d}", "d"},
		{"${NOPE:-}", ""},
		{"${NOPE:-a b:c}", "a b:c"},
		{"${EMPTY}", ""},
		{"${EMPTY:-d}", ""}, // set but empty is set (no ":-" fallback for empty, unlike sh)
		{"$A", "$A"},        // only the braced form is expanded
		{"${}", "${}"},
		{"${1A}", "${1A}"},
		{"pa$$word", "pa$$word"},
		{"$${A}", "${A}"}, // the escape for a literal "${"
		{"$${NOPE}", "${NOPE}"},
		{"$$${A}", "$${A}"}, // "$${" is read first, from the left
	}
	for _, tc := range cases {
		got, err := expandAll([]byte(tc.in), lookup)
		if err != nil {
			t.Errorf("expandAll(%q): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("expandAll(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	_, err := expandAll([]byte("${X1} ${A} ${X2:-ok} ${X3} ${X1}"), lookup)
	if err == nil {
		t.Fatal("unset variables: no error")
	}
	wantAll(t, err.Error(), "X1", "X3")
	if strings.Contains(err.Error(), "X2") {
		t.Errorf("a variable with a default is named as unset: %v", err)
	}
	if strings.Count(err.Error(), "X1") != 1 {
		t.Errorf("want each unset variable named once: %v", err)
	}

	// A "${" in a default would leave a stray reference or brace behind: it is refused.
	for _, in := range []string{"${NOPE:-${A}}", "${A:-${A}}"} {
		if got, err := expandAll([]byte(in), lookup); err == nil {
			t.Errorf("expandAll(%q) = %q, want an error for the nested reference", in, got)
		}
	}
}

// FuzzExpand: expand never panics; every reference to a set variable is replaced; an error
// names exactly the unset variables that have no default.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "${S}", "${U}", "${U:-d}", "a${S}b${S:-x}c", "$${S}", "$$", "${S", "${S:-${S}}", "}${", "${U:-}"} {
		f.Add(s)
	}
	// Variables whose names start with S are set, to a value that contains no "$" or braces, so
	// that the output's references can only come from the input.
	lookup := func(k string) (string, bool) {
		if strings.HasPrefix(k, "S") {
			return "<" + k + ">", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := expandAll([]byte(in), lookup)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if name, ok := strings.CutPrefix(line, "${"); ok {
					name, _, _ = strings.Cut(name, ":-...}: a default cannot contain")
					if !strings.Contains(in, "${"+name+":-") {
						t.Fatalf("error names a nested default of %q, which is not in the input: %v", name, err)
					}
					continue
				}
				names, ok := strings.CutPrefix(line, "environment variables not set: ")
				if !ok {
					t.Fatalf("unexpected error: %v", err)
				}
				for _, name := range strings.Split(names, ", ") {
					if _, ok := lookup(name); ok || !strings.Contains(in, "${"+name+"}") {
						t.Fatalf("error names %q, which is set or not referenced: %v", name, err)
					}
				}
			}
			return
		}
		for _, m := range envRef.FindAllStringSubmatchIndex(string(out), -1) {
			if m[2] < 0 {
				continue // "$${"
			}
			name := string(out[m[2]:m[3]])
			if _, ok := lookup(name); !ok {
				continue
			}
			// Only an escaped reference ("$${S}" in the input) may survive, as "${S}".
			if !strings.Contains(in, "$"+string(out[m[0]:m[1]])) {
				t.Fatalf("expandAll(%q) = %q: reference %q to a set variable survived", in, out, out[m[0]:m[1]])
			}
		}
	})
}

// The adapters' own options decode strictly under their types.
func TestAdapterTypes(t *testing.T) {
	c, err := Parse([]byte(`
sources:
  - name: orders
    type: amqp
    url: amqp://guest:guest@127.0.0.1:5672/
    exchange: orders
    bindings: ["eu.#"]
    queue: streamux.orders
    ack: after_route
  - name: ticker
    type: websocket
    url: wss://feed.example/ws
    on_connect: ['{"op":"subscribe"}']
    key: data.symbol
    ping_interval: 5s
  - name: ticks
    type: nats
    url: nats://127.0.0.1:4222
    subjects: ["ticks.>"]
    queue_group: streamux
  - name: cache
    type: redis
    url: redis://127.0.0.1:6379
    patterns: ["events.*"]
  - name: sensors
    type: mqtt
    url: mqtt://127.0.0.1:1883
    topics: ["sensors/+/temp"]
    qos: 0
  - name: logs
    type: kafka
    brokers: ["127.0.0.1:9092"]
    topics: [logs]
    group: streamux
    sasl: {mechanism: SCRAM-SHA-256, username: u, password: p}
`))
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := c.Sources[0].Spec.(*amqp.Config); !ok || a.Exchange != "orders" || a.Ack != "after_route" {
		t.Fatalf("amqp: %#v", c.Sources[0].Spec)
	}
	if w, ok := c.Sources[1].Spec.(*wsdial.Config); !ok || w.Key != "data.symbol" || w.PingInterval != 5*time.Second {
		t.Fatalf("websocket: %#v", c.Sources[1].Spec)
	}
	if n, ok := c.Sources[2].Spec.(*nats.Config); !ok || n.Subjects[0] != "ticks.>" || n.QueueGroup != "streamux" {
		t.Fatalf("nats: %#v", c.Sources[2].Spec)
	}
	if r, ok := c.Sources[3].Spec.(*redis.Config); !ok || r.Patterns[0] != "events.*" {
		t.Fatalf("redis: %#v", c.Sources[3].Spec)
	}
	if m, ok := c.Sources[4].Spec.(*mqtt.Config); !ok || m.Topics[0] != "sensors/+/temp" || m.QoS == nil || *m.QoS != 0 {
		t.Fatalf("mqtt: %#v", c.Sources[4].Spec)
	}
	if k, ok := c.Sources[5].Spec.(*kafka.Config); !ok || k.Group != "streamux" || k.SASL.Mechanism != "SCRAM-SHA-256" {
		t.Fatalf("kafka: %#v", c.Sources[5].Spec)
	}
	_, err = Parse([]byte("sources:\n  - name: n\n    type: nats\n    url: nats://x:4222\n    subject: a\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown field "subject"`) {
		t.Fatalf("a nats source with subject for subjects: %v", err)
	}
	_, err = Parse([]byte("sources:\n  - name: o\n    type: amqp\n    url: amqp://x/\n    exchange: e\n    prefech: 3\n"))
	if err == nil || !strings.Contains(err.Error(), `"prefech"`) {
		t.Fatalf("a misspelt amqp option: %v", err)
	}
	_, err = Parse([]byte("sources:\n  - name: w\n    type: websocket\n"))
	if err == nil || !strings.Contains(err.Error(), "url") {
		t.Fatalf("a websocket source without url: %v", err)
	}
}
