package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A listener off loopback with no authentication configured is refused before it listens.
func TestRefusesOpenNonLoopbackListener(t *testing.T) {
	p := start(t, "-listen", "0.0.0.0:0")
	if code := p.wait(10 * time.Second); code == 0 {
		t.Fatal("exited 0")
	}
	if msg := p.stderr.String(); !strings.Contains(msg, "not a loopback address") || !strings.Contains(msg, "auth: none") {
		t.Fatalf("stderr does not say why: %s", msg)
	}
}

// With API keys configured the binary answers 401 without a key and 200 with one.
func TestServeWithAPIKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "auth.yaml")
	// sha256("test-key")
	yaml := "auth:\n  api_keys:\n    - name: t\n      sha256: 62af8704764faf8ea82fc61ce9c4c3908b6cb97d463a634e9e587d7c885db0ef\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "-config", cfg)
	for key, want := range map[string]int{"": 401, "wrong": 401, "test-key": 200} {
		req, _ := http.NewRequest("GET", s.url("/v1/sources"), nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("key %q: %d, want %d", key, resp.StatusCode, want)
		}
	}
}

// tail takes its key from $STREAMUX_TOKEN or -token-file, so that it need not show in the
// process list; without one it stops with the server's 401.
func TestTailTokenFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "auth.yaml")
	// sha256("test-key"); the demo source gives tail something to print.
	yaml := "sources:\n  - name: demo\n    type: demo\n    rate: 50\nauth:\n  api_keys:\n    - name: t\n      sha256: 62af8704764faf8ea82fc61ce9c4c3908b6cb97d463a634e9e587d7c885db0ef\n"
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("test-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, "-config", cfg)
	for _, tl := range []*proc{
		startEnv(t, []string{"STREAMUX_TOKEN=test-key"}, "tail", "-url", s.url(""), ""),
		start(t, "tail", "-url", s.url(""), "-token-file", keyFile, ""),
	} {
		tl.waitMessages(t, 2)
		tl.stop()
	}
	tl := startEnv(t, []string{"STREAMUX_TOKEN="}, "tail", "-url", s.url(""), "")
	if code := tl.wait(10 * time.Second); code != 1 || !strings.Contains(tl.stderr.String(), "401") {
		t.Errorf("tail without a key: exit %d, stderr %s", code, tl.stderr)
	}
}
