package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/streamux/streamux/internal/buildinfo"
)

// version prints which streamux this is: the module version, the commit it was built from with
// its time and whether the tree was modified, and the Go toolchain, as the build recorded them
// (internal/buildinfo). streamux_build_info in /metrics carries the same.
func version(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the build information as one JSON object")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: streamux version [-json]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "streamux version: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	bi := buildinfo.Read()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(bi)
	}
	_, err := fmt.Fprintln(stdout, bi)
	return err
}
