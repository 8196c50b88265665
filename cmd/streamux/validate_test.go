package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// streamux validate passes a good file with "ok" and exit status 0, and starts nothing: the
// data directory the file names is not made.
func TestValidateGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "good.yaml")
	good := `listen: 127.0.0.1:0
data_dir: data
sources:
  - name: ticks
    type: demo
    rate: 5
    backoff: {initial: 1s, max: 1m}
limits:
  queue_events: 64
`
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "validate", "-config", path)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, p.stderr)
	}
	if got := p.stdout.String(); got != "ok\n" {
		t.Errorf("stdout %q, want \"ok\\n\"", got)
	}
	if got := p.stderr.String(); got != "" {
		t.Errorf("stderr %q, want nothing", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("validate made the data directory (or cannot tell: %v)", err)
	}
}

// A bad file: every problem on stderr at its line, as FILE:LINE: field: message, in the order
// of the lines, then a count; exit status 1 and nothing on stdout.
func TestValidateBad(t *testing.T) {
	t.Parallel()
	bad := `listen: 127.0.0.1:0
sorces: []
sources:
  - name: ticks
    type: demo
    rat: 5
    backoff:
      initial: 10s
      max: 2s
limits:
  queue_events: -1
stream:
  heartbeat: 15
auth:
  api_keys:
    - name: ci
      sha256: abc123
`
	path := writeFile(t, "bad.yaml", bad)
	p := start(t, "validate", "-config", path)
	if code := p.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderr)
	}
	want := []string{
		path + `:2: unknown field "sorces" (did you mean "sources"?)`,
		path + `:6: sources[0] (ticks): unknown field "rat" (did you mean "rate"?)`,
		path + `:11: limits.queue_events: must be positive, not -1`,
		path + `:13: stream.heartbeat: 15 is a number, not a duration: write 15s (or 15ms, 15m, 15h)`,
		path + `:17: auth.api_keys[0]: sha256 is 3 bytes; a SHA-256 is 32 (64 hex digits)`,
		"streamux: " + path + ": 5 problems",
	}
	if got := strings.Split(strings.TrimSuffix(p.stderr.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out := p.stdout.String(); out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}

	// Once the decoding problems are fixed, what Validate finds is at its line too.
	path = writeFile(t, "bad2.yaml", strings.NewReplacer("sorces: []\n", "", "rat:", "rate:", "heartbeat: 15", "heartbeat: 15s").Replace(bad))
	p = start(t, "validate", "-config", path)
	if code := p.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderr)
	}
	want = []string{
		path + `:8: sources[0] (ticks).backoff.max: 2s is less than backoff.initial 10s`,
		path + `:10: limits.queue_events: must be positive, not -1`,
		path + `:16: auth.api_keys[0]: sha256 is 3 bytes; a SHA-256 is 32 (64 hex digits)`,
		"streamux: " + path + ": 3 problems",
	}
	if got := strings.TrimSuffix(p.stderr.String(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// What the server refuses before it listens is a problem too, and a file that cannot be read
// or a command line without -config is said so.
func TestValidateOther(t *testing.T) {
	t.Parallel()
	open := writeFile(t, "open.yaml", "listen: 0.0.0.0:0\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"validate", "-config", open}, 1, open + ": listen 0.0.0.0:0 is not a loopback address and auth is not configured"},
		{[]string{"validate", "-config", filepath.Join(t.TempDir(), "none.yaml")}, 1, "no such file or directory"},
		{[]string{"validate"}, 2, "-config FILE is required"},
		{[]string{"validate", "-config", open, "extra"}, 2, `unexpected argument "extra"`},
	} {
		p := start(t, tc.args...)
		if code := p.wait(10 * time.Second); code != tc.code {
			t.Errorf("streamux %q: exit status %d, want %d", tc.args, code, tc.code)
		}
		if !strings.Contains(p.stderr.String(), tc.want) {
			t.Errorf("streamux %q: stderr does not contain %q:\n%s", tc.args, tc.want, p.stderr)
		}
		if p.stdout.String() != "" {
			t.Errorf("streamux %q: stdout %q, want nothing", tc.args, p.stdout)
		}
	}
}

// A -log-level the server does not know is answered with the ones it does.
func TestLogLevelNamesLevels(t *testing.T) {
	t.Parallel()
	p := start(t, "-listen", "127.0.0.1:0", "-log-level", "verbose")
	if code := p.wait(10 * time.Second); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if want := `-log-level "verbose": want debug, info, warn or error`; !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr does not contain %q:\n%s", want, p.stderr)
	}
}
