package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// benchTool is the load tool's command, which `streamux bench` runs: a command of its own so
// that the server does not carry the load generator.
const benchTool = "streamux-bench"

// bench runs streamux-bench with args, found beside this executable or else on PATH, and
// returns its exit code. Stopped by ctx (SIGINT, SIGTERM), it passes SIGINT on, so that the
// tool stops its servers and prints what it has measured.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	path, err := findBench()
	if err != nil {
		fmt.Fprintf(stderr, "streamux: bench runs %s, which is not installed: %v\n"+
			"  go install github.com/streamux/streamux/cmd/streamux-bench@latest\n"+
			"  (from a clone: go install ./cmd/streamux-bench, or go run ./cmd/streamux-bench %s)\n", benchTool, err, strings.Join(args, " "))
		return 2
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode()
	}
	fmt.Fprintf(stderr, "streamux: bench: %v\n", err)
	return 1
}

// findBench is the path of streamux-bench: beside this executable (as go install puts both),
// else on PATH.
func findBench() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), benchTool)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(benchTool)
}
