package streamuxjs_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	streamuxjs "github.com/streamux/streamux/clients/js"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/server"
	"github.com/streamux/streamux/internal/source/ingest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startServer runs a real streamux server, in process on a loopback port, with the http
// sources names, each keeping history messages (0: the default), until the test ends.
func startServer(t *testing.T, history int, names ...string) string {
	t.Helper()
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
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owned by the cleanup, which waits for it
		defer close(done)
		_ = srv.Run(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// node finds Node.js 20 or later: the test is skipped without it, unless CI=true.
func node(t *testing.T) string {
	t.Helper()
	missing := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the JavaScript client's tests must run)")
		}
		t.Skip(msg)
	}
	path, err := exec.LookPath("node")
	if err != nil {
		missing("no node found: install Node.js 20 or later to test the JavaScript client")
	}
	out, err := exec.Command(path, "-p", "process.versions.node").Output()
	if err != nil {
		t.Fatalf("node -p process.versions.node: %v", err)
	}
	v := strings.TrimSpace(string(out))
	if major, _, _ := strings.Cut(v, "."); len(major) < 2 || major < "20" {
		missing("node " + v + " is too old: the JavaScript client's tests need Node.js 20 or later")
	}
	return path
}

// The module's own tests (test/*.test.js) run under Node's test runner against real servers:
// STREAMUX_URL serves the http sources "in" and "other"; STREAMUX_SMALL_URL serves "in" with a
// history of 10 messages, for gaps. Node 20 has a global WebSocket only behind a flag, which
// is given when needed, so that both transports are tested.
func TestNode(t *testing.T) {
	if testing.Short() {
		t.Skip("the JavaScript client's tests skipped in -short mode")
	}
	bin := node(t)
	args := []string{"--test", "--test-reporter=spec"}
	if out, err := exec.Command(bin, "-e", "process.stdout.write(typeof WebSocket)").Output(); err == nil && string(out) != "function" {
		args = append([]string{"--experimental-websocket"}, args...)
	}
	files, err := filepath.Glob("test/*.test.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in test/: %v", err)
	}
	args = append(args, files...)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"STREAMUX_URL="+startServer(t, 0, "in", "other"),
		"STREAMUX_SMALL_URL="+startServer(t, 10, "in"),
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("node %s:\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("node's tests failed: %v", err)
	}
	// A test that never ran (cancelled) fails node too; this guards against a runner that
	// passes with nothing run.
	if !strings.Contains(out.String(), "ℹ fail 0") || !strings.Contains(out.String(), "ℹ cancelled 0") || strings.Contains(out.String(), "ℹ pass 0") {
		t.Fatal("node's report does not say that every test ran and passed")
	}
}

// Module is the file itself, as the web page serves it.
func TestModuleIsTheFile(t *testing.T) {
	b, err := os.ReadFile("streamux.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, streamuxjs.Module) || !bytes.Contains(b, []byte("export function subscribe(")) {
		t.Error("Module is not streamux.js")
	}
}
