package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// streamux bench runs streamux-bench from PATH with its arguments and exits with its code; a
// machine without it is told how to install it.
func TestBenchRunsTheLoadTool(t *testing.T) {
	t.Parallel()
	p := startEnv(t, []string{"PATH=" + t.TempDir()}, "bench", "fanout", "-clients", "10")
	if code := p.wait(10 * time.Second); code != 2 {
		t.Errorf("without streamux-bench: exit status %d, want 2", code)
	}
	for _, w := range []string{"streamux-bench, which is not installed", "go install", "go run ./cmd/streamux-bench fanout -clients 10"} {
		if !strings.Contains(p.stderr.String(), w) {
			t.Errorf("without streamux-bench: stderr does not contain %q:\n%s", w, p.stderr)
		}
	}

	// A stand-in on PATH that prints its arguments and exits 3.
	dir := t.TempDir()
	script := "#!/bin/sh\necho \"bench: $*\"\necho oops >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "streamux-bench"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p = startEnv(t, []string{"PATH=" + dir + ":/usr/bin:/bin"}, "bench", "fanout", "-clients", "10")
	if code := p.wait(10 * time.Second); code != 3 {
		t.Errorf("exit status %d, want the tool's 3", code)
	}
	if got := p.stdout.String(); got != "bench: fanout -clients 10\n" {
		t.Errorf("stdout %q, want the tool's", got)
	}
	if got := p.stderr.String(); got != "oops\n" {
		t.Errorf("stderr %q, want the tool's", got)
	}
}
