package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/server"
	"github.com/streamux/streamux/internal/sourcetest"
)

// A JWT public key rotated in place (the same file, another key) applies at the next reload:
// tokens of the new key are accepted, those of the old one refused.
func TestReloadRereadsKeyFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "jwt.pem")
	newKey := func() ed25519.PrivateKey {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return priv
	}
	sign := func(k ed25519.PrivateKey) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "t", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := newKey()
	raw := []byte("sources:\n  - name: in\n    type: http\nauth:\n  jwt:\n    public_keys: [" + keyFile + "]\n")
	load := func() (*config.Config, error) { return config.Parse(raw) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Options{Log: quietLog, Load: load})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Run(ctx, ln) }) // waited for below
	defer func() { cancel(); wg.Wait() }()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	status := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/v1/sources", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(sign(first)); got != http.StatusOK {
		t.Fatalf("a token of the configured key: %d", got)
	}
	second := newKey()
	sum, err := srv.Reload(ctx)
	if err != nil || !sum.AuthChanged || sum.Changed != true {
		t.Fatalf("Reload: %+v, %v; want auth_changed", sum, err)
	}
	if got := status(sign(second)); got != http.StatusOK {
		t.Errorf("a token of the rotated key after the reload: %d, want 200", got)
	}
	if got := status(sign(first)); got != http.StatusUnauthorized {
		t.Errorf("a token of the old key after the reload: %d, want 401", got)
	}
}

// A server built without Options.Load has nothing to reload.
func TestReloadWithoutFile(t *testing.T) {
	srv, err := server.New(config.Default(), server.Options{Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Reload(context.Background()); !errors.Is(err, server.ErrNotReloadable) {
		t.Errorf("Reload: %v, want %v", err, server.ErrNotReloadable)
	}
}

// In a cluster the sources change only with a restart: a reload says so and leaves them, and
// applies the rest.
func TestReloadClusterSources(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	file := func(extra string) []byte {
		return fmt.Appendf(nil, `
listen: 127.0.0.1:0
sources:
  - {name: in, type: http}
%scluster:
  nats: {url: %q}
  stream_prefix: %s
  node: solo
  lease_ttl: 1s
`, extra, urls, prefix)
	}
	raw := file("")
	load := func() (*config.Config, error) { return config.Parse(raw) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Options{Log: quietLog, Load: load})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Run(ctx, ln) }) // waited for below
	defer func() { cancel(); wg.Wait() }()

	raw = append(file("  - {name: more, type: http}\n"), "limits:\n  connections: 7\n"...)
	sum, err := srv.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sum.RestartNeeded, []string{"sources (in a cluster)"}) || len(sum.SourcesAdded) != 0 ||
		!slices.Equal(sum.LimitsChanged, []string{"limits.connections"}) {
		t.Errorf("Reload: %+v; want the sources to need a restart and the limit applied", sum)
	}
	if got := srv.Supervisor().Names(); !slices.Equal(got, []string{"in"}) {
		t.Errorf("the sources after the reload: %v, want [in]", got)
	}
}
