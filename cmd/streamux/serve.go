package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/server"
)

func serveCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := fs.String("config", "", "the configuration file (YAML); none: the embedded default")
	listen := fs.String("listen", "", "the address to serve on, overriding the configuration")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	dataDir := fs.String("data-dir", "", `the data directory, overriding the configuration's data_dir ("memory": none)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "streamux: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	cfg := config.Default()
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	// Refuse to serve without authentication off loopback before listening at all.
	warning, err := cfg.Auth.CheckListen(cfg.Listen)
	if err != nil {
		return err
	}
	if warning != "" {
		log.Warn(warning)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return serve(ctx, cfg, ln, log)
}

// serve runs streamux on ln until ctx is done, then shuts it down within cfg.ShutdownGrace
// (internal/server owns the order). A shutdown that ran out of grace has been logged, and is
// still a stop: it exits 0.
func serve(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error {
	srv, err := server.New(cfg, server.Options{Log: log})
	if err != nil {
		ln.Close()
		return err
	}
	if err := srv.Run(ctx, ln); err != nil && !errors.Is(err, server.ErrNotClean) {
		return err
	}
	return nil
}
