package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/server"
	"github.com/streamux/streamux/internal/source/ingest"
	"github.com/streamux/streamux/internal/sourcetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quietLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// running is a server that Run serves on a loopback port.
type running struct {
	url    string
	stop   context.CancelFunc
	done   chan error
	client *http.Client
}

// start runs a server for cfg: one http source named "in" unless cfg has sources.
func start(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	srv, err := server.New(cfg, server.Options{Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{url: "http://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1), client: &http.Client{Timeout: 10 * time.Second}}
	go func() { r.done <- srv.Run(ctx, ln) }() // waited for by wait, or the cleanup
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(cfg.ShutdownGrace + 5*time.Second):
			t.Error("Run did not return")
		}
		r.client.CloseIdleConnections()
	})
	sourcetest.Eventually(t, 10*time.Second, func() bool {
		for _, si := range srv.Supervisor().Sources() {
			if si.State != "up" {
				return false
			}
		}
		return true
	}, "the sources up")
	return r
}

// wait stops the server and returns Run's error and how long it took.
func (r *running) wait(t *testing.T) (time.Duration, error) {
	t.Helper()
	begin := time.Now()
	r.stop()
	err := <-r.done
	r.done <- err // for the cleanup
	return time.Since(begin), err
}

func config1(grace time.Duration, dataDir string) *config.Config {
	cfg := config.Default()
	cfg.Sources = []config.Source{{Name: "in", Type: "http", Spec: &ingest.Config{}}}
	cfg.ShutdownGrace = grace
	cfg.DataDir = dataDir
	return cfg
}

func (r *running) publish(t *testing.T, lines ...string) {
	t.Helper()
	resp, err := r.client.Post(r.url+"/v1/sources/in/messages", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish: %s %s", resp.Status, b)
	}
}

func (r *running) lastSeq(t *testing.T) uint64 {
	t.Helper()
	resp, err := r.client.Get(r.url + "/v1/sources")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct {
		Counters struct {
			LastSeq uint64 `json:"last_seq"`
		} `json:"counters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list) != 1 {
		t.Fatalf("/v1/sources: %v %+v", err, list)
	}
	return list[0].Counters.LastSeq
}

// A server with no client stops at once, cleanly.
func TestRunStopsCleanly(t *testing.T) {
	r := start(t, config1(10*time.Second, config.DataDirMemory))
	r.publish(t, "1", "2")
	took, err := r.wait(t)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took > 2*time.Second {
		t.Errorf("an idle server took %v to stop", took)
	}
}

// A WebSocket client that never reads holds its stream's last write for the whole write timeout;
// the shutdown cuts it before the grace ends and returns within the grace, saying it was not clean.
func TestRunEndsWithinGrace(t *testing.T) {
	const grace = 1500 * time.Millisecond
	cfg := config1(grace, config.DataDirMemory)
	cfg.Stream.WriteTimeout = time.Minute
	r := start(t, cfg)
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(r.url, "http")+"/v1/stream?source=in&policy=drop", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // never read: the server's writes fill both sockets' buffers
	big := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 60<<10))
	for range 100 {
		r.publish(t, big)
	}
	took, err := r.wait(t)
	if !errors.Is(err, server.ErrNotClean) {
		t.Errorf("Run: %v, want ErrNotClean", err)
	}
	if took > grace+500*time.Millisecond {
		t.Errorf("the shutdown took %v, over the grace of %v", took, grace)
	}
}

// The data directory closes after the routers have recorded their last numbers: the next run
// goes on right after the last message, rather than after the block the first run set aside.
func TestDataDirOutlivesRouters(t *testing.T) {
	dir := t.TempDir()
	r := start(t, config1(10*time.Second, dir))
	r.publish(t, "1", "2", "3")
	if _, err := r.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r = start(t, config1(10*time.Second, dir)) // the directory's lock was let go
	// Ingest answers once a message is queued for the router, not once it is numbered: wait.
	r.publish(t, "4")
	var got uint64
	sourcetest.Eventually(t, 10*time.Second, func() bool { got = r.lastSeq(t); return got > 3 }, "message 4 routed")
	if got != 4 {
		t.Errorf("after a restart, the next message is number %d, want 4", got)
	}
}
