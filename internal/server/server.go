// Package server is one streamux: from a configuration it builds the sources (each by its
// registered type), the data directory, the supervisor that runs the sources and their routers,
// the HTTP API with the web page, and it serves them on a listener until its context ends; then
// it shuts them down, in order, within the configuration's shutdown_grace. It is the one owner of
// that order: the command, the benchmark's server and every test harness run streamux through
// it, and nobody else calls the parts' Run, Shutdown, Drain or Close.
//
// The order of a shutdown, and why:
//
//  1. The API drains: /readyz fails, a new stream gets 503, streaming ingest requests end.
//  2. The listener closes (net/http's Shutdown), and the supervisor ends every stream (WebSocket
//     1001); both wait, until the grace less a margin, for the streams' owners to close them.
//  3. The WebSocket streams still open then are cut (their connections closed), and so are the
//     SSE and NDJSON connections (net/http's Close); every wait after the cut is bounded by the
//     end of the grace.
//  4. The sources stop, then the routers, which route what they accepted and record their last
//     sequence numbers (the supervisor's Run returns).
//  5. The data directory closes, after the routers have written to it for the last time.
//
// Reload (reload.go) reads the configuration again, from Options.Load, and applies what can
// change while serving: the supervisor's sources, the API's authenticator and limits.
//
// Concurrency: New builds and starts nothing. Run is called once; it starts the supervisor's
// goroutine and net/http's, and returns once they have returned, or once shutdown_grace has run
// out since ctx ended, whichever comes first: it never waits longer, and a part that has not
// stopped by then is left to the process's exit (and said in the error). Supervisor and API may
// be called from any goroutine.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/sequence"
	_ "github.com/streamux/streamux/internal/sink/all" // every sink type
	"github.com/streamux/streamux/internal/source"
	_ "github.com/streamux/streamux/internal/source/all" // every source type
	"github.com/streamux/streamux/internal/supervisor"
	"github.com/streamux/streamux/internal/transport"
	"github.com/streamux/streamux/internal/webui"
)

// ErrNotClean is in the error Run returns when the shutdown ran out of grace: streams were cut,
// or sources and routers had not stopped by its end. Everything that could stop has; the command
// logs it and exits 0, as a stop that ran out of time is still a stop.
var ErrNotClean = errors.New("shutdown was not clean")

// Options are what a Server takes besides its configuration. Zero values take the defaults.
type Options struct {
	// Log receives the server's log. Defaults to slog.Default().
	Log *slog.Logger
	// Wrap, if set, wraps the handler of every request: a middleware in front of the API and
	// the web page (a test records the page's requests with it).
	Wrap func(http.Handler) http.Handler
	// Load reads the configuration file again, as the command read it at start (flags
	// applied), for Reload (SIGHUP, POST /v1/reload); nil: the server cannot reload.
	Load func() (*config.Config, error)
}

// Server is streamux: its sources, routers, API and web page. Create it with New, then Run it.
type Server struct {
	cfg  *config.Config
	log  *slog.Logger
	data *sequence.Dir // nil: sequence numbers in memory
	// conns are, in a cluster, the connections to its servers: one that appends, one that
	// reads the logs; none when alone.
	conns []*cluster.Conn
	sup   *supervisor.Supervisor
	// sinks deliver what their predicates match (internal/sink); they read the routers, so
	// they stop before them.
	sinks *sinkAdmin
	api   *httpapi.Server
	hs    *http.Server
	// authn authenticates the API's requests; nil without auth. Run runs its refresher of
	// auth.jwt.jwks_url while serving.
	authn *auth.Authenticator
	opt   Options
	// reload is the state of Reload (reload.go).
	reload reloader
}

// New builds a server from cfg, as config.Load or config.Default returns it (defaults applied,
// valid): it makes every source's adapter, opens the data directory, and builds the supervisor
// and the API. It starts nothing. The data directory is held from here until Run returns; a
// Server that is never Run holds it until the process exits.
func New(cfg *config.Config, opt Options) (*Server, error) {
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	var authn *auth.Authenticator
	if !cfg.Auth.Disabled() {
		var err error
		if authn, err = auth.New(cfg.Auth); err != nil {
			return nil, err
		}
	}
	srcs, err := buildSources(cfg)
	if err != nil {
		return nil, err
	}
	data, err := openData(cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	var conns []*cluster.Conn // in a cluster: appends, then reads
	if cfg.Cluster != nil {
		if conns, err = connect(*cfg.Cluster, cfg.Listen); err != nil {
			if data != nil {
				data.Close()
			}
			return nil, err
		}
		log.Info("cluster: connected", "node", conns[0].Node(), "cluster", cfg.Cluster.String())
	}
	sup, err := supervisor.New(srcs, supervisor.Options{
		History:     router.History{Size: cfg.History.Size, MaxAge: cfg.History.MaxAge, MaxBytes: cfg.History.MaxBytes},
		Queue:       output.Limits{Events: cfg.Limits.QueueEvents, Bytes: cfg.Limits.QueueBytes},
		Data:        data,
		Log:         log,
		Cluster:     clusterConn(conns, 0),
		ClusterRead: clusterConn(conns, 1),
		FeedDelay:   feedDelay(),
	})
	if err != nil {
		if data != nil {
			data.Close()
		}
		closeAll(conns)
		return nil, err
	}
	l := &cfg.Limits
	srv := &Server{cfg: cfg, log: log, data: data, conns: conns, sup: sup, authn: authn, opt: opt}
	srv.reload.applied = cfg
	var reload httpapi.Reloader
	if opt.Load != nil {
		reload = func(ctx context.Context) (any, error) { return srv.Reload(ctx) }
	}
	sinks, err := newSinkAdmin(cfg, sup, data, clusterConn(conns, 0), log)
	if err != nil {
		if data != nil {
			data.Close()
		}
		closeAll(conns)
		return nil, err
	}
	api := httpapi.New(sup, httpapi.Options{
		Sinks:      sinks,
		Predicates: predicate.Limits{MaxBytes: l.PredicateMaxBytes, MaxCost: l.PredicateMaxCost},
		Transport: transport.Options{
			WriteTimeout: cfg.Stream.WriteTimeout, Heartbeat: cfg.Stream.Heartbeat,
			MaxBatch: cfg.Stream.MaxBatch, MaxClientFrame: l.ClientFrameBytes, WriteDelay: cfg.Stream.WriteDelay,
		},
		Web:            webui.Handler(),
		Log:            log,
		Auth:           authn,
		AllowedOrigins: cfg.AllowedOrigins,
		AllowedHosts:   allowedHosts(cfg),
		Limits:         apiLimits(l),
		Check:          httpapi.CheckLimits{MaxCost: l.CheckMaxCost, Rate: l.CheckRate, Burst: l.CheckBurst},
		Reload:         reload,
	})
	var h http.Handler = api
	if opt.Wrap != nil {
		h = opt.Wrap(h)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.sinks, srv.api, srv.hs = sinks, api, hs
	return srv, nil
}

// apiLimits are the API's limits in l.
func apiLimits(l *config.Limits) httpapi.Limits {
	return httpapi.Limits{
		Connections: l.Connections, ConnectionsPerAddress: l.ConnectionsPerAddress,
		SubscriptionsPerCredential: l.SubscriptionsPerCredential,
		SubscribeRate:              l.SubscribeRate, SubscribeBurst: l.SubscribeBurst,
		ApplyToLoopback: l.ApplyToLoopback,
		IngestRequests:  l.IngestRequests, IngestRequestsPerClient: l.IngestRequestsPerClient,
		BodyBytes: l.BodyBufferBytes, BodyReadTimeout: l.BodyReadTimeout,
		BodyMinRate: l.BodyMinRate, IngestIdleTimeout: l.IngestIdleTimeout,
	}
}

// Supervisor is the server's supervisor: its sources, routers and subscriptions.
func (s *Server) Supervisor() *supervisor.Supervisor { return s.sup }

// API is the server's HTTP API.
func (s *Server) API() *httpapi.Server { return s.api }

// Run serves on ln until ctx is done, then shuts down in the order of the package comment within
// cfg.ShutdownGrace, and returns; it closes ln. It returns nil after a clean shutdown, an error
// wrapping ErrNotClean after one that ran out of grace, and the error of serving if ln failed
// (after the same shutdown).
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	// As the sockets of the sources: read and written with raw system calls (internal/rawconn).
	ln = rawconn.Listener{Listener: ln}
	supCtx, stopSup := context.WithCancel(context.Background())
	defer stopSup()
	supDone := make(chan error, 1)
	go func() { supDone <- s.sup.Run(supCtx) }() // waited for by shutdown, until the grace ends
	sinkCtx, stopSinks := context.WithCancel(context.Background())
	sinksDone := make(chan struct{})
	go func() { defer close(sinksDone); s.sinks.Run(sinkCtx) }() // waited for below
	// The refresher of auth.jwt.jwks_url; a reload replaces it with its Authenticator's.
	s.runAuth(s.authn)
	defer s.stopAuthRun() // a fetch returns when its context ends
	httpDone := make(chan error, 1)
	scheme := "http"
	if s.cfg.TLS.Cert != "" {
		scheme = "https"
		go func() { httpDone <- s.hs.ServeTLS(ln, s.cfg.TLS.Cert, s.cfg.TLS.Key) }() // waited for by shutdown
	} else {
		go func() { httpDone <- s.hs.Serve(ln) }() // waited for by shutdown
	}
	s.log.Info("streamux serving", "url", scheme+"://"+ln.Addr().String()+"/", "sources", s.sup.Names(), "auth", !s.cfg.Auth.Disabled())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-httpDone: // the listener failed: shut down all the same
		httpDone = nil
	}
	// The sinks first: they read the routers, and each saves its position as it stops; what
	// they had not delivered, the next run delivers.
	stopSinks()
	<-sinksDone
	err := s.shutdown(httpDone, stopSup, supDone)
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return err
}

// shutdown stops everything Run started, in order, within the grace. httpDone says when
// net/http's Serve has returned (nil: it has), supDone when the supervisor's Run has, which
// stopSup makes it do.
func (s *Server) shutdown(httpDone <-chan error, stopSup context.CancelFunc, supDone <-chan error) error {
	grace := s.cfg.ShutdownGrace
	s.log.Info("shutting down", "grace", grace)
	// hard is the end of the grace, which no wait outlasts. The streams get the grace less a
	// margin (cut): a client that does not read can hold its write (and the close frame) for the
	// whole write timeout, and cutting it at the very end of the grace made the process exit
	// just after it, when docker stop's 10 s had run out.
	hard, cancelHard := context.WithTimeout(context.Background(), grace)
	defer cancelHard()
	cut, cancelCut := context.WithTimeout(hard, grace-min(grace/4, time.Second))
	defer cancelCut()

	s.api.Drain()
	shutDone := make(chan error, 1)
	// Shutdown closes the listener at once, then waits, until cut, for the SSE and NDJSON
	// handlers, which return as soon as the supervisor ends their streams just below.
	go func() { shutDone <- s.hs.Shutdown(cut) }() // waited for below; it returns by cut
	var errs []error
	if err := s.sup.Shutdown(cut); err != nil {
		errs = append(errs, err)
	}
	if err := s.api.Close(cut, hard); err != nil {
		errs = append(errs, err)
	}
	if err := <-shutDone; err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		s.hs.Close() // cuts the SSE and NDJSON connections still open; waits for nothing
	}
	if httpDone != nil {
		<-httpDone // Serve returns at once after Shutdown or Close
	}
	stopSup()
	select {
	case err := <-supDone:
		if err != nil {
			errs = append(errs, err)
		}
		if s.data != nil {
			// After the routers, which record their last numbers as they stop.
			if err := s.data.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		// After the feeds and the holders, which release their leases as they stop.
		closeAll(s.conns)
	case <-hard.Done():
		// The routers may still write their last numbers: the directory stays open, its lock
		// held, until the process exits.
		errs = append(errs, errors.New("sources or routers still stopping at the end of the shutdown grace"))
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("%w: %w", ErrNotClean, errors.Join(errs...))
		s.log.Warn("shutdown was not clean", "err", errors.Join(errs...))
	}
	s.log.Info("stopped")
	return err
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

// connect makes a cluster's two connections: one for appends and leases, one to read the logs
// on, so that a node that appends at full speed still reads what it appended.
func connect(cfg cluster.Config, listen string) ([]*cluster.Conn, error) {
	var conns []*cluster.Conn
	for _, suffix := range []string{"", "-read"} {
		c := cfg
		c.NATS.ConnectionName += suffix
		ctx, cancel := context.WithTimeout(context.Background(), cfg.NATS.ConnectTimeout)
		conn, err := cluster.Connect(ctx, c, listen)
		cancel()
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, conn)
	}
	return conns, nil
}

// clusterConn is conns[i], nil when alone.
func clusterConn(conns []*cluster.Conn, i int) *cluster.Conn {
	if i < len(conns) {
		return conns[i]
	}
	return nil
}

func closeAll(conns []*cluster.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// feedDelay is a test hook: STREAMUX_TEST_FEED_DELAY (a duration) makes a node of a cluster
// read its logs that much slower per message, to test a resume from an id it has not read yet.
func feedDelay() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("STREAMUX_TEST_FEED_DELAY"))
	return d
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
