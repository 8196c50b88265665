package main_test

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

var interrupt = syscall.SIGINT

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		p := start(t, args...)
		if code := p.wait(10 * time.Second); code != 0 {
			t.Errorf("streamux %v: exit status %d, want 0", args, code)
		}
		out := p.stdout.String()
		for _, w := range []string{"Usage:", "streamux tail", "-config"} {
			if !strings.Contains(out, w) {
				t.Errorf("streamux %v: usage on stdout does not contain %q:\n%s", args, w, out)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"-no-such-flag"}, "no-such-flag"},
		{[]string{"-listen", "127.0.0.1:0", "extra"}, `unexpected argument "extra"`},
		{[]string{"tail", "-no-such-flag"}, "no-such-flag"},
		{[]string{"tail", "key", "==", `"odd"`}, "one argument"},
	}
	for _, tc := range cases {
		p := start(t, tc.args...)
		if code := p.wait(10 * time.Second); code != 2 {
			t.Errorf("streamux %q: exit status %d, want 2", tc.args, code)
		}
		if !strings.Contains(p.stderr.String(), tc.want) {
			t.Errorf("streamux %q: stderr does not contain %q:\n%s", tc.args, tc.want, p.stderr)
		}
	}
}

func TestBadLogFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-log-level", "loud"}, {"-log-format", "xml"}} {
		p := start(t, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
		if code := p.wait(10 * time.Second); code == 0 {
			t.Errorf("streamux %q: exit status 0", args)
		}
		if !strings.Contains(p.stderr.String(), args[0]) {
			t.Errorf("streamux %q: stderr does not name %s:\n%s", args, args[0], p.stderr)
		}
	}
}
