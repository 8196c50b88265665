package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/source"
	_ "github.com/streamux/streamux/internal/source/all" // every source type
	"github.com/streamux/streamux/internal/supervisor"
	"github.com/streamux/streamux/internal/transport"
	"github.com/streamux/streamux/internal/webui"
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

// serve runs streamux on ln until ctx is done, then shuts down within cfg.ShutdownGrace: it stops
// accepting, closes every stream (WebSocket 1001), stops the sources and routers, and returns.
func serve(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error {
	var authn *auth.Authenticator
	if !cfg.Auth.Disabled() {
		var err error
		if authn, err = auth.New(cfg.Auth); err != nil {
			ln.Close()
			return err
		}
	}
	srcs, err := buildSources(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	data, err := openData(cfg.DataDir, log)
	if err != nil {
		ln.Close()
		return err
	}
	if data != nil {
		// After the supervisor, whose routers record their last numbers as they stop.
		defer data.Close()
	}
	sup, err := supervisor.New(srcs, supervisor.Options{
		History: router.History{Size: cfg.History.Size, MaxAge: cfg.History.MaxAge, MaxBytes: cfg.History.MaxBytes},
		Queue:   output.Limits{Events: cfg.Limits.QueueEvents, Bytes: cfg.Limits.QueueBytes},
		Data:    data,
		Log:     log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	api := httpapi.New(sup, httpapi.Options{
		Predicates: predicate.Limits{MaxBytes: cfg.Limits.PredicateMaxBytes, MaxCost: cfg.Limits.PredicateMaxCost},
		Transport: transport.Options{
			WriteTimeout: cfg.Stream.WriteTimeout, Heartbeat: cfg.Stream.Heartbeat,
			MaxBatch: cfg.Stream.MaxBatch, MaxClientFrame: cfg.Limits.ClientFrameBytes, WriteDelay: cfg.Stream.WriteDelay,
		},
		Web:            webui.Handler(),
		Log:            log,
		Auth:           authn,
		AllowedOrigins: cfg.AllowedOrigins,
		AllowedHosts:   allowedHosts(cfg),
		Limits: httpapi.Limits{
			Connections: cfg.Limits.Connections, ConnectionsPerAddress: cfg.Limits.ConnectionsPerAddress,
			SubscriptionsPerCredential: cfg.Limits.SubscriptionsPerCredential,
			SubscribeRate:              cfg.Limits.SubscribeRate, SubscribeBurst: cfg.Limits.SubscribeBurst,
			ApplyToLoopback: cfg.Limits.ApplyToLoopback,
			IngestRequests:  cfg.Limits.IngestRequests, IngestRequestsPerClient: cfg.Limits.IngestRequestsPerClient,
			BodyBytes: cfg.Limits.BodyBufferBytes, BodyReadTimeout: cfg.Limits.BodyReadTimeout,
			BodyMinRate: cfg.Limits.BodyMinRate, IngestIdleTimeout: cfg.Limits.IngestIdleTimeout,
		},
		Check: httpapi.CheckLimits{MaxCost: cfg.Limits.CheckMaxCost, Rate: cfg.Limits.CheckRate, Burst: cfg.Limits.CheckBurst},
	})
	hs := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: cfg.Limits.HeaderTimeout,
		IdleTimeout:       cfg.Limits.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	ln = rawconn.Listener{Listener: ln}
	supCtx, stopSup := context.WithCancel(context.Background())
	defer stopSup()
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Run(supCtx) }() // waited for below
	httpDone := make(chan error, 1)
	scheme := "http"
	if cfg.TLS.Cert != "" {
		scheme = "https"
		go func() { httpDone <- hs.ServeTLS(ln, cfg.TLS.Cert, cfg.TLS.Key) }() // waited for below
	} else {
		go func() { httpDone <- hs.Serve(ln) }() // waited for below
	}

	log.Info("streamux serving", "url", scheme+"://"+ln.Addr().String()+"/", "sources", sup.Names(), "auth", !cfg.Auth.Disabled())
	select {
	case <-ctx.Done():
	case err := <-httpDone:
		stopSup()
		<-supDone
		return fmt.Errorf("serve: %w", err)
	}

	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	// The streams get the grace less a margin: a client that does not read can hold its write
	// (and the close frame) for the whole write timeout, and cutting it at the very end of the
	// grace made the process exit just after it, when docker stop's 10 s have run out.
	grace, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace-min(cfg.ShutdownGrace/4, time.Second))
	defer cancel()
	api.Drain()
	shutDone := make(chan error, 1)
	// Shutdown closes the listener at once, then waits for the SSE and NDJSON handlers, which
	// return as soon as the supervisor ends their streams just below.
	go func() { shutDone <- hs.Shutdown(grace) }()
	var errs []error
	if err := sup.Shutdown(grace); err != nil {
		errs = append(errs, err)
	}
	api.Close(grace)
	if err := <-shutDone; err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		hs.Close()
	}
	<-httpDone
	stopSup()
	if err := <-supDone; err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		log.Warn("shutdown was not clean", "err", errors.Join(errs...))
	}
	log.Info("stopped")
	return nil
}

// allowedHosts are the Host names to answer besides loopback names and addresses: the
// configuration's, and without auth the name streamux listens on, if it is a name, which is
// how its own users reach it.
func allowedHosts(cfg *config.Config) []string {
	hosts := cfg.AllowedHosts
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && cfg.Auth.Disabled() && host != "" && net.ParseIP(host) == nil {
		hosts = append(slices.Clip(hosts), host)
	}
	return hosts
}

// openData opens the data directory, or returns nil when the sequence numbers are kept in
// memory, which it says.
func openData(path string, log *slog.Logger) (*sequence.Dir, error) {
	if path == "" || path == config.DataDirMemory {
		log.Info("no data directory: sequence numbers start at 1 again in every run, so a client cannot resume across a restart (set data_dir or -data-dir to keep them)")
		return nil, nil
	}
	d, err := sequence.Open(path)
	if err != nil {
		return nil, err
	}
	log.Info("data directory", "path", d.Path())
	return d, nil
}

// buildSources makes each configured source's adapter, by its registered type.
func buildSources(cfg *config.Config) ([]supervisor.Source, error) {
	var out []supervisor.Source
	for _, sc := range cfg.Sources {
		t, ok := source.Lookup(sc.Type)
		if !ok {
			return nil, fmt.Errorf("source %q: type %q is not registered", sc.Name, sc.Type)
		}
		a, err := t.New(sc.Spec)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", sc.Name, err)
		}
		out = append(out, supervisor.Source{
			Name: sc.Name, Type: sc.Type, Required: sc.Required, Adapter: a,
			Backoff: source.Backoff{Initial: sc.Backoff.Initial, Max: sc.Backoff.Max},
		})
	}
	return out, nil
}
