package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/server"
	"github.com/streamux/streamux/internal/source/ingest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serve runs a streamux server with the http sources names on a loopback port until stop, and
// returns its URL. Each source keeps history messages.
func serve(names []string, history int) (url string, stop func(), err error) {
	cfg := config.Default()
	cfg.Sources = nil // not the demo
	for _, n := range names {
		cfg.Sources = append(cfg.Sources, config.Source{Name: n, Type: "http", Spec: &ingest.Config{}})
	}
	cfg.DataDir = config.DataDirMemory
	cfg.ShutdownGrace = 5 * time.Second
	if history > 0 {
		cfg.History.Size = history
	}
	srv, err := server.New(cfg, server.Options{Log: quiet})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owned by stop, which waits for it
		defer close(done)
		_ = srv.Run(ctx, ln)
	}()
	// The http sources take requests once they run: Publish waits for them (up to 5 s).
	return "http://" + ln.Addr().String(), func() { cancel(); <-done }, nil
}

// startServer is serve for a test, stopped at its end.
func startServer(t *testing.T, history int, names ...string) string {
	t.Helper()
	u, stop, err := serve(names, history)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return u
}
