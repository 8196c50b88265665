package nats_test

import (
	"context"
	"net/url"
	"os"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
)

// natsURLEnv names the environment variable that points the tests at another NATS server.
const natsURLEnv = "STREAMUX_TEST_NATS_URL"

// requireNATS returns the NATS server to test against ($STREAMUX_TEST_NATS_URL, or the one on
// 127.0.0.1:4222 that every development and CI machine runs), skipping the test when none
// answers, or failing if CI=true.
func requireNATS(t testing.TB) (rawURL, addr string) {
	t.Helper()
	rawURL = os.Getenv(natsURLEnv)
	if rawURL == "" {
		rawURL = "nats://127.0.0.1:4222"
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("%s is not a NATS URL", natsURLEnv)
	}
	addr = u.Host
	if u.Port() == "" {
		addr += ":4222"
	}
	sourcetest.RequireServer(t, "NATS", addr)
	return rawURL, addr
}

// server is a test's own connection to NATS, for publishing.
type server struct {
	url, addr string
	nc        *natsgo.Conn
}

func newServer(t testing.TB) *server {
	u, addr := requireNATS(t)
	nc, err := natsgo.Connect(u, natsgo.Name("streamux-test"))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	return &server{url: u, addr: addr, nc: nc}
}

// publish sends msgs to prefix.KEY, each with its headers, and returns once the server has
// them all.
func (s *server) publish(ctx context.Context, prefix string, msgs ...sourcetest.Msg) error {
	for _, m := range msgs {
		nm := natsgo.NewMsg(prefix + "." + m.Key)
		nm.Data = m.Body
		for k, v := range m.Headers {
			nm.Header.Set(k, v)
		}
		if err := s.nc.PublishMsg(nm); err != nil {
			return err
		}
	}
	return s.nc.FlushWithContext(ctx)
}

func newFixture(t *testing.T, _ sourcetest.Options) sourcetest.Fixture {
	s := newServer(t)
	prefix := sourcetest.UniqueName(t)
	return &sourcetest.PrefixFixture{
		Prefix: prefix, Sep: ".", Proxy: sourcetest.NewProxy(t, s.addr),
		NewSource: func(t *testing.T, addr string) source.Source {
			src, err := nats.New(nats.Config{Conn: nats.Conn{URL: "nats://" + addr}, Subjects: []string{prefix + ".>"}})
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Send: func(ctx context.Context, msgs ...sourcetest.Msg) error { return s.publish(ctx, prefix, msgs...) },
	}
}

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: newFixture, Headers: true})
}
