package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

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
	// load reads the configuration as the flags say; a reload (SIGHUP) reads it again so.
	load := func() (*config.Config, error) {
		cfg := config.Default()
		if *cfgPath != "" {
			var err error
			if cfg, err = config.Load(*cfgPath); err != nil {
				return nil, err
			}
		}
		if *listen != "" {
			cfg.Listen = *listen
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *cfgPath == "" {
		load = nil // the embedded default: nothing to read again
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
	return serveReloading(ctx, cfg, ln, log, load)
}

// serve runs streamux on ln until ctx is done, then shuts it down within cfg.ShutdownGrace
// (internal/server owns the order). A shutdown that ran out of grace has been logged, and is
// still a stop: it exits 0. SIGHUP is logged and ignored: there is no file to reload.
func serve(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error {
	return serveReloading(ctx, cfg, ln, log, nil)
}

// serveReloading is serve where SIGHUP reloads the configuration with load (server.Reload),
// which logs what it did; without load (no file), SIGHUP is logged and ignored.
func serveReloading(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger, load func() (*config.Config, error)) error {
	srv, err := server.New(cfg, server.Options{Log: log, Load: load})
	if err != nil {
		ln.Close()
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	reloads := make(chan struct{})
	go func() { // ends with runCtx; waited for below
		defer close(reloads)
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				if load == nil {
					log.Warn("SIGHUP: streamux was started without -config: there is no file to reload")
					continue
				}
				log.Info("SIGHUP: reloading the configuration")
				_, _ = srv.Reload(runCtx) // it logs what it did, or why not
			}
		}
	}()
	err = srv.Run(runCtx, ln)
	cancel()
	<-reloads
	if err != nil && !errors.Is(err, server.ErrNotClean) {
		return err
	}
	return nil
}
