// Command streamux pulls messages from many streams at once and multiplexes them to clients that
// come and go, each with its own CEL predicate.
//
//	streamux                      serve the embedded default: a demo source on 127.0.0.1:8080
//	streamux -config FILE         serve the sources, limits and listen address of FILE (YAML)
//	streamux tail [flags] 'PRED'  print the messages that match PRED from a running streamux
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage is a command line that could not be understood; the flag package has said why.
var errUsage = errors.New("usage")

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(args) > 0 && args[0] == "tail":
		err = tail(ctx, args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "bench":
		// The load tool is a command of its own, so that the server does not carry it.
		fmt.Fprintln(stderr, "streamux: bench is its own command now: streamux-bench SCENARIO [flags] (go run ./cmd/streamux-bench -h; BENCHMARKS.md)")
		return 2
	case len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return 0
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		fmt.Fprintf(stderr, "streamux: unknown command %q\n\n%s", args[0], usage)
		return 2
	default:
		err = serveCommand(ctx, args, stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "streamux: %v\n", err)
	return 1
}

const usage = `streamux: one endpoint, many streams, each client with its own predicate.

Usage:
  streamux [-config FILE] [-listen ADDR] [-data-dir DIR] [-log-level LEVEL] [-log-format text|json]
      Serve. With no -config: one demo source on 127.0.0.1:8080 and the web page at /.
  streamux tail [-url URL] [-source NAME]... [-from ID] [-json] 'PREDICATE'
      Print the messages that match PREDICATE (CEL) from a running streamux.

See README.md for the configuration file, the API and the predicate language.
`

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format must be text or json, got %q", format)
}
