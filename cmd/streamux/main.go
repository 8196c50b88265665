// Command streamux pulls messages from many streams at once and multiplexes them to clients that
// come and go, each with its own CEL predicate.
//
//	streamux                      serve the embedded default: a demo source on 127.0.0.1:8080
//	streamux -config FILE         serve the sources, limits and listen address of FILE (YAML)
//	streamux tail [flags] 'PRED'  print the messages that match PRED from a running streamux
//	streamux bench SCENARIO ...   run the load tool, streamux-bench (BENCHMARKS.md)
//	streamux validate -config FILE  check FILE, print every problem at its line
//	streamux version [-json]      print the version and commit this binary was built from
//	streamux auth hash-key|token  make an API key's config line, or mint a JWT
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
	case len(args) > 0 && args[0] == "version":
		err = version(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "auth":
		err = authCommand(args[1:], os.Stdin, stdout, stderr)
	case len(args) > 0 && args[0] == "validate":
		err = validateCommand(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "bench":
		return bench(ctx, args[1:], stdout, stderr)
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
  streamux bench SCENARIO [flags]
      Load a streamux and report what it delivers and at what cost: runs streamux-bench,
      installed beside streamux or on PATH (streamux bench -h lists the scenarios).
  streamux version [-json]
      Print the module version, the commit and the Go toolchain this binary was built with.
  streamux auth hash-key [-generate] [-name NAME]
      Read an API key on stdin (or make one) and print its api_keys entry for the config.
  streamux auth token [-config FILE | -hs256-secret-file F | -private-key F] [-sub S] [-ttl D] ...
      Mint a JWT that the configured auth.jwt accepts, for tests and scripts.
  streamux validate -config FILE
      Check FILE without starting anything: every problem at its line, exit status 1 if any.

See docs/README.md in the repository for the configuration, the API and the predicate language.
`

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error (or one with an offset, such as info+2)", level)
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
