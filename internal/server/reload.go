package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/supervisor"
)

// ErrNotReloadable is Reload's error for a server built without Options.Load: it has no
// configuration file to read again.
var ErrNotReloadable = errors.New("no configuration file to reload")

// ReloadSummary is what a reload changed: the answer to POST /v1/reload, and the log's line.
type ReloadSummary struct {
	// Changed says whether anything was applied.
	Changed          bool     `json:"changed"`
	SourcesAdded     []string `json:"sources_added"`
	SourcesRemoved   []string `json:"sources_removed"`
	SourcesRestarted []string `json:"sources_restarted"`
	// AuthChanged: API keys or JWT settings changed, or JWT key files (public_keys,
	// jwks_file) were read again, which every reload does; they apply to new requests.
	AuthChanged bool `json:"auth_changed"`
	// StreamsRevoked are the streams ended because their API key was removed or changed.
	StreamsRevoked int `json:"streams_revoked"`
	// LimitsChanged are the limits (limits.<name>) applied to new requests.
	LimitsChanged []string `json:"limits_changed"`
	// RestartNeeded are the settings that changed but take a restart: left as they were.
	RestartNeeded []string `json:"restart_needed"`
	// Errors are what could not be applied (a source that could not start).
	Errors []string `json:"errors,omitempty"`
}

// liveLimits are the limits: fields (by their YAML names) that a reload applies to new
// requests; a change of any other takes a restart.
var liveLimits = []string{
	"connections", "connections_per_address", "subscriptions_per_credential",
	"subscribe_rate", "subscribe_burst", "apply_to_loopback",
	"ingest_requests", "ingest_requests_per_client",
}

// reloader is the state of reloads: one at a time, each against what the last one applied.
type reloader struct {
	mu sync.Mutex
	// applied is the configuration as applied: the one New had, then each reload's, but
	// for what takes a restart, which stays New's.
	applied *config.Config

	// The refresher of the Authenticator in use (its jwks_url), which a reload replaces.
	authMu   sync.Mutex
	stopAuth context.CancelFunc
	authDone chan struct{}
	stopped  bool // Run has ended: no refresher starts any more
}

// runAuth starts a's refresher (auth.Authenticator.Run) in place of the one running, which it
// stops and waits for.
func (s *Server) runAuth(a *auth.Authenticator) {
	rl := &s.reload
	rl.authMu.Lock()
	defer rl.authMu.Unlock()
	if rl.stopAuth != nil {
		rl.stopAuth()
		<-rl.authDone
		rl.stopAuth = nil
	}
	if rl.stopped {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	rl.stopAuth, rl.authDone = stop, done
	go func() { defer close(done); a.Run(ctx, s.log) }() // waited for by the next runAuth or stopAuthRun
}

// stopAuthRun stops the refresher for good (Run's end).
func (s *Server) stopAuthRun() {
	rl := &s.reload
	rl.authMu.Lock()
	defer rl.authMu.Unlock()
	rl.stopped = true
	if rl.stopAuth != nil {
		rl.stopAuth()
		<-rl.authDone
		rl.stopAuth = nil
	}
}

// Reload reads the configuration again (Options.Load) and applies what can change while
// serving: sources added, removed or changed (supervisor.Reconfigure), API keys and JWT
// settings, the admission limits. What takes a restart (listen, data_dir, cluster, tls,
// sinks, …) is named in the summary and logged, and left as it was. A configuration that does
// not load or validate changes nothing: the error is an *httpapi.InvalidConfig with every
// problem. Reloads run one at a time; Reload is safe from any goroutine while Run runs.
func (s *Server) Reload(ctx context.Context) (ReloadSummary, error) {
	sum, err := s.reloadOnce(ctx)
	switch ic := (*httpapi.InvalidConfig)(nil); {
	case errors.As(err, &ic):
		s.log.Error("reload: the configuration does not validate; nothing changed", "problems", ic.Problems)
	case err != nil:
		s.log.Error("reload failed", "err", err)
	default:
		if len(sum.RestartNeeded) > 0 {
			s.log.Warn("reload: these settings changed but take a restart; they are as they were", "settings", sum.RestartNeeded)
		}
		if len(sum.Errors) > 0 {
			s.log.Error("reload: some changes could not be applied", "errors", sum.Errors)
		}
		s.log.Info("configuration reloaded", "changed", sum.Changed, "sources_added", sum.SourcesAdded,
			"sources_removed", sum.SourcesRemoved, "sources_restarted", sum.SourcesRestarted,
			"auth_changed", sum.AuthChanged, "streams_revoked", sum.StreamsRevoked, "limits_changed", sum.LimitsChanged)
	}
	return sum, err
}

func (s *Server) reloadOnce(ctx context.Context) (ReloadSummary, error) {
	sum := ReloadSummary{SourcesAdded: []string{}, SourcesRemoved: []string{}, SourcesRestarted: []string{}, LimitsChanged: []string{}, RestartNeeded: []string{}}
	if s.opt.Load == nil {
		return sum, ErrNotReloadable
	}
	rl := &s.reload
	rl.mu.Lock()
	defer rl.mu.Unlock()
	next, err := s.opt.Load()
	if err != nil {
		return sum, invalidConfig(err)
	}
	// The listener stays: the rule of authentication off loopback applies to it.
	if _, err := next.Auth.CheckListen(s.cfg.Listen); err != nil {
		return sum, invalidConfig(err)
	}
	cur := rl.applied
	restart := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			sum.RestartNeeded = append(sum.RestartNeeded, name)
		}
	}
	// Against New's configuration: these never change while serving.
	start := s.cfg
	restart("listen", start.Listen, next.Listen)
	restart("data_dir", start.DataDir, next.DataDir)
	restart("cluster", start.Cluster, next.Cluster)
	restart("tls", start.TLS, next.TLS)
	restart("shutdown_grace", start.ShutdownGrace, next.ShutdownGrace)
	restart("history", start.History, next.History)
	restart("stream", start.Stream, next.Stream)
	restart("allowed_origins", start.AllowedOrigins, next.AllowedOrigins)
	restart("allowed_hosts", start.AllowedHosts, next.AllowedHosts)
	restart("sinks", start.Sinks, next.Sinks)
	if start.Auth.Disabled() != next.Auth.Disabled() {
		sum.RestartNeeded = append(sum.RestartNeeded, "auth (turned on or off)")
	}
	limits := limitsDiff(start.Limits, next.Limits)
	for _, name := range limits {
		if !slices.Contains(liveLimits, name) {
			sum.RestartNeeded = append(sum.RestartNeeded, "limits."+name)
		}
	}
	for _, name := range limitsDiff(cur.Limits, next.Limits) {
		if slices.Contains(liveLimits, name) {
			sum.LimitsChanged = append(sum.LimitsChanged, "limits."+name)
		}
	}

	// What to build before anything changes, so that a failure changes nothing.
	var change supervisor.Change
	sourcesChanged := false
	for _, sc := range next.Sources {
		i := slices.IndexFunc(cur.Sources, func(c config.Source) bool { return c.Name == sc.Name })
		if i >= 0 && sameSource(cur.Sources[i], sc) {
			continue
		}
		sourcesChanged = true
		if start.Cluster != nil {
			continue
		}
		built, err := buildSources(&config.Config{Sources: []config.Source{sc}})
		if err != nil {
			return sum, invalidConfig(err)
		}
		if i < 0 {
			change.Add = append(change.Add, built[0])
			sum.SourcesAdded = append(sum.SourcesAdded, sc.Name)
		} else {
			change.Replace = append(change.Replace, built[0])
			sum.SourcesRestarted = append(sum.SourcesRestarted, sc.Name)
		}
	}
	for _, sc := range cur.Sources {
		if !slices.ContainsFunc(next.Sources, func(c config.Source) bool { return c.Name == sc.Name }) {
			sourcesChanged = true
			if start.Cluster == nil {
				change.Remove = append(change.Remove, sc.Name)
				sum.SourcesRemoved = append(sum.SourcesRemoved, sc.Name)
			}
		}
	}
	if sourcesChanged && start.Cluster != nil {
		sum.RestartNeeded = append(sum.RestartNeeded, "sources (in a cluster)")
	}
	var authn *auth.Authenticator
	// Key files are read again on every reload: a key rotated in place (the same path)
	// applies too.
	jwtFiles := next.Auth.JWT != nil && (next.Auth.JWT.JWKSFile != "" || len(next.Auth.JWT.PublicKeys) > 0)
	sum.AuthChanged = (jwtFiles || !reflect.DeepEqual(cur.Auth, next.Auth)) && start.Auth.Disabled() == next.Auth.Disabled()
	if sum.AuthChanged && !next.Auth.Disabled() {
		if authn, err = auth.New(next.Auth); err != nil {
			return sum, invalidConfig(err)
		}
	}

	// Apply: the sources, then the settings of new requests.
	if len(change.Add)+len(change.Remove)+len(change.Replace) > 0 {
		if err := s.sup.Reconfigure(ctx, change); err != nil {
			sum.Errors = append(sum.Errors, err.Error())
		}
	}
	applied := *next
	if sum.AuthChanged || len(sum.LimitsChanged) > 0 {
		set := httpapi.Settings{Auth: s.api.Authenticator(), Limits: apiLimits(&next.Limits)}
		if sum.AuthChanged {
			set.Auth = authn
		}
		sum.StreamsRevoked = s.api.Apply(set)
		if sum.AuthChanged {
			s.runAuth(authn)
		}
	}
	if !sum.AuthChanged {
		applied.Auth = cur.Auth
	}
	if start.Cluster != nil {
		applied.Sources = cur.Sources
	}
	rl.applied = &applied
	sum.Changed = len(sum.SourcesAdded)+len(sum.SourcesRemoved)+len(sum.SourcesRestarted)+len(sum.LimitsChanged) > 0 || sum.AuthChanged
	return sum, nil
}

// invalidConfig is err as the reload's answer: every problem, each on its own.
func invalidConfig(err error) error {
	var ps config.Problems
	if errors.As(err, &ps) {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = fmt.Sprint(p)
		}
		return &httpapi.InvalidConfig{Problems: out}
	}
	var msgs []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			msgs = append(msgs, e.Error())
		}
	} else {
		msgs = []string{err.Error()}
	}
	return &httpapi.InvalidConfig{Problems: msgs}
}

// sameSource reports whether a and b configure the same source alike.
func sameSource(a, b config.Source) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Required == b.Required && a.Backoff == b.Backoff &&
		reflect.DeepEqual(a.Spec, b.Spec)
}

// limitsDiff names (by YAML name) the fields of limits that differ between a and b.
func limitsDiff(a, b config.Limits) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name := va.Type().Field(i).Tag.Get("yaml")
			out = append(out, name)
		}
	}
	return out
}
