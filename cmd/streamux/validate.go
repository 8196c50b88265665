package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/streamux/streamux/internal/config"
)

// validateCommand is streamux validate: it reads the configuration as the server would, starts
// nothing (no listener, no source, no data directory), and prints every problem at its line,
// "FILE:LINE: field: message", on stderr. Without a problem it prints "ok" on stdout.
func validateCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: streamux validate -config FILE\n\nCheck FILE as streamux -config FILE would, without starting anything.\n")
	}
	path := fs.String("config", "", "the configuration file (YAML) to check")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "streamux validate: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "streamux validate: -config FILE is required")
		return errUsage
	}
	cfg, err := config.Load(*path)
	if problems, ok := errors.AsType[config.Problems](err); ok {
		for _, p := range problems {
			fmt.Fprintln(stderr, problemLine(*path, p))
		}
		return fmt.Errorf("%s: %d %s", *path, len(problems), plural(len(problems), "problem", "problems"))
	}
	if err != nil {
		return err // the file could not be read
	}
	// What the server checks before it listens, so that a file that passes here starts.
	warning, err := cfg.Auth.CheckListen(cfg.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return fmt.Errorf("%s: 1 problem", *path)
	}
	if warning != "" {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, warning)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// problemLine is p as compilers write theirs, "FILE:LINE: field: message", so that editors can
// jump to it; a message of several lines (a predicate's, with its caret) goes on indented.
func problemLine(path string, p config.Problem) string {
	var b strings.Builder
	b.WriteString(path)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(strings.ReplaceAll(p.Msg, "\n", "\n\t"))
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
