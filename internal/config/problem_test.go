package config

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// Each problem is told at its line, with the field it is about (issue 22, item 2): the whole
// message is compared, so that a message that loses its line, its field or its advice fails.
func TestProblems(t *testing.T) {
	t.Parallel()
	sha63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name, yaml string
		want       []string // every problem, as Problem.Error says it, in the order of the lines
	}{
		{"each limit by its name", "limits:\n  queue_events: -1\n  connections: 5\n  subscribe_rate: -0.5\n  idle_timeout: -1s\n", []string{
			"line 2: limits.queue_events: must be positive, not -1",
			"line 4: limits.subscribe_rate: must be positive, not -0.5",
			"line 5: limits.idle_timeout: must be positive, not -1s",
		}},
		{"stream and history by name", "stream: {max_batch: -2}\nhistory:\n  max_age: -1m\n", []string{
			"line 1: stream.max_batch: must be positive, not -2",
			"line 3: history.max_age: must be positive, not -1m0s",
		}},
		{"a duration as a number", "stream:\n  heartbeat: 15\n", []string{
			"line 2: stream.heartbeat: 15 is a number, not a duration: write 15s (or 15ms, 15m, 15h)",
		}},
		{"a duration as a fraction", "shutdown_grace: 2.5\n", []string{
			"line 1: shutdown_grace: 2.5 is a number, not a duration: write 2.5s (or 2.5ms, 2.5m, 2.5h)",
		}},
		{"a duration as a word", "history: {max_age: soon}\n", []string{
			`line 1: history.max_age: "soon" is not a duration: write it as 15s, 1m30s or 250ms`,
		}},
		{"a source's duration as a number", "sources:\n  - name: d\n    type: demo\n    backoff:\n      initial: 5\n", []string{
			"line 5: sources[0] (d).backoff.initial: 5 is a number, not a duration: write 5s (or 5ms, 5m, 5h)",
		}},
		{"auth's duration as a number", "auth:\n  jwt:\n    hs256_secret: " + strings.Repeat("s", 32) + "\n    leeway: 30\n", []string{
			"line 4: auth.jwt.leeway: 30 is a number, not a duration: write 30s (or 30ms, 30m, 30h)",
		}},
		{"a cluster's duration as a number", "cluster:\n  nats:\n    url: nats://127.0.0.1:4222\n    connect_timeout: 10\n  lease_ttl: 3\n", []string{
			"line 4: cluster.nats.connect_timeout: 10 is a number, not a duration: write 10s (or 10ms, 10m, 10h)",
			"line 5: cluster.lease_ttl: 3 is a number, not a duration: write 3s (or 3ms, 3m, 3h)",
		}},
		{"a SHA-256 too short", "auth:\n  api_keys:\n    - name: ci\n      sha256: abcd\n", []string{
			"line 4: auth.api_keys[0]: sha256 is 2 bytes; a SHA-256 is 32 (64 hex digits)",
		}},
		{"a SHA-256 a digit short", "auth:\n  api_keys:\n    - sha256: " + sha63 + "\n", []string{
			"line 3: auth.api_keys[0]: sha256 is 63 hex digits; a SHA-256 is 64",
		}},
		{"backoff.max below initial", "sources:\n  - name: d\n    type: demo\n    backoff:\n      initial: 10s\n      max: 2s\n", []string{
			"line 6: sources[0] (d).backoff.max: 2s is less than backoff.initial 10s",
		}},
		{"backoff negative", "sources:\n  - name: d\n    type: demo\n    backoff: {initial: -1s}\n", []string{
			"line 4: sources[0] (d).backoff.initial: must be positive, not -1s",
		}},
		{"an unknown field at the top", "listen: 127.0.0.1:9000\nsorces:\n  - {name: d, type: demo}\n", []string{
			`line 2: unknown field "sorces" (did you mean "sources"?)`,
		}},
		{"an unknown field within", "limits:\n  queue_event: 5\n", []string{
			`line 2: limits: unknown field "queue_event" (did you mean "queue_events"?)`,
		}},
		{"an unknown field of a source", "sources:\n  - name: d\n    type: demo\n    rat: 5\n", []string{
			`line 4: sources[0] (d): unknown field "rat" (did you mean "rate"?)`,
		}},
		{"an unknown field of a source's own", "sources:\n  - name: d\n    type: demo\n    backoff: {intial: 1s}\n", []string{
			`line 4: sources[0] (d).backoff: unknown field "intial" (did you mean "initial"?)`,
		}},
		{"an unknown field of auth", "auth:\n  api_keys:\n    - sha256: " + strings.Repeat("a", 64) + "\n      admn: true\n", []string{
			`line 4: auth.api_keys[0]: unknown field "admn" (did you mean "admin"?)`,
		}},
		{"an unknown field far from any", "frobnicate: 1\n", []string{
			`line 1: unknown field "frobnicate"`,
		}},
		{"through an alias, where it is used", "tls: &t {cert: a, key: b}\nhistory: *t\n", []string{
			`line 1: history: unknown field "cert"`,
			`line 1: history: unknown field "key"`,
		}},
		{"a list for a mapping", "limits:\n  - 1\n", []string{
			"line 2: limits: a list where a mapping belongs",
		}},
		{"a word for a number", "history:\n  size: many\n", []string{
			`line 2: history.size: "many" is not a whole number`,
		}},
		{"a field the file leaves out is at its parent", "sources:\n  - type: demo\n", []string{
			"line 2: sources[0]: name is required",
		}},
		{"a source's own message at its field", "sources:\n  - name: d\n    type: demo\n    rate: -1\n", []string{
			"line 4: sources[0] (d): rate must be positive, got -1",
		}},
		{"a sink's", "sinks:\n  - name: w\n    type: console\n    batch: {max: -1}\n    retry:\n      max_age: -1h\n", []string{
			"line 4: sinks[0] (w).batch.max: must be positive, not -1",
			"line 6: sinks[0] (w).retry.max_age: must be positive, not -1h0m0s",
		}},
		{"an unknown sink field", "sinks:\n  - name: w\n    type: console\n    retyr: {}\n", []string{
			`line 4: sinks[0] (w): unknown field "retyr" (did you mean "retry"?)`,
		}},
		{"not YAML", "listen: [\n", []string{
			"line 1: did not find expected node content",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse:\n%s\nerror %v (%T), want Problems", tc.yaml, err, err)
			}
			got := make([]string, len(ps))
			for i, p := range ps {
				got[i] = p.Error()
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Parse:\n%s\ngot\n\t%s\nwant\n\t%s", tc.yaml, strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
			if ps.Error() != strings.Join(tc.want, "\n") {
				t.Errorf("Problems.Error() = %q", ps.Error())
			}
		})
	}
}

// A problem that belongs to no line (a variable the environment lacks) has none, and Load
// keeps the Problems under the file's name.
func TestProblemsWithoutLine(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("listen: ${STREAMUX_TEST_NEVER_SET_VAR}\n"))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Line != 0 || !strings.Contains(ps[0].Msg, "STREAMUX_TEST_NEVER_SET_VAR") {
		t.Fatalf("got %#v (%v)", ps, err)
	}

	path := t.TempDir() + "/streamux.yaml"
	if err := os.WriteFile(path, []byte("history:\n  size: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0] != (Problem{Line: 2, Path: "history.size", Msg: "must be positive, not -1"}) {
		t.Fatalf("Load: %#v (%v)", ps, err)
	}
	if !strings.HasPrefix(err.Error(), "config "+path+": line 2: history.size:") {
		t.Errorf("Load's error does not start with the file: %v", err)
	}
}
