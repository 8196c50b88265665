package sourcetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamURLEnv names the environment variable that points the tests at another NATS server
// with JetStream than the machine's.
const JetStreamURLEnv = "STREAMUX_TEST_NATS_URL"

// RequireJetStream returns the JetStream server to test against ($STREAMUX_TEST_NATS_URL, or
// the nats-server on 127.0.0.1:4222 that every development and CI machine runs), skipping the
// test when none answers, or failing it if CI=true (RequireServer).
func RequireJetStream(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(JetStreamURLEnv)
	if raw == "" {
		raw = "nats://127.0.0.1:4222"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s is not a NATS URL", JetStreamURLEnv)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":4222"
	}
	RequireServer(t, "NATS", addr)
	return raw
}

// StreamPrefix is a JetStream stream prefix that no other test, of this run or another, uses.
func StreamPrefix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "SXT" + hex.EncodeToString(b[:]) + "_"
}

// DeleteStreams deletes every stream of the servers at urls whose name begins with prefix, or
// with "KV_" and prefix (a key-value bucket's), as a test that made them leaves. It gives up
// after 10 s, time enough for a cluster to delete replicated streams.
func DeleteStreams(urls, prefix string) {
	nc, err := natsgo.Connect(urls)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var del []string
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) || strings.HasPrefix(n, "KV_"+prefix) {
			del = append(del, n)
		}
	}
	for _, n := range del {
		_ = js.DeleteStream(ctx, n)
	}
}
