package redis_test

import (
	"context"
	"net/url"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/sourcetest"
)

// redisURLEnv names the environment variable that points the tests at another Redis.
const redisURLEnv = "STREAMUX_TEST_REDIS_URL"

// server is a test's own connection to Redis, for publishing: the one on 127.0.0.1:6379 that
// every development and CI machine runs, or $STREAMUX_TEST_REDIS_URL. Without one the test is
// skipped, or fails if CI=true.
type server struct {
	addr   string
	client *goredis.Client
}

func newServer(t testing.TB) *server {
	t.Helper()
	raw := os.Getenv(redisURLEnv)
	if raw == "" {
		raw = "redis://127.0.0.1:6379"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s is not a Redis URL", redisURLEnv)
	}
	sourcetest.RequireServer(t, "Redis", u.Host)
	opt, err := goredis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return &server{addr: u.Host, client: c}
}

// publish sends msgs to the channels prefix.KEY, in order.
func (s *server) publish(ctx context.Context, prefix string, msgs ...sourcetest.Msg) error {
	pipe := s.client.Pipeline()
	for _, m := range msgs {
		pipe.Publish(ctx, prefix+"."+m.Key, m.Body)
	}
	_, err := pipe.Exec(ctx)
	return err
}

func newFixture(t *testing.T, _ sourcetest.Options) sourcetest.Fixture {
	s := newServer(t)
	prefix := sourcetest.UniqueName(t)
	return &sourcetest.PrefixFixture{
		Prefix: prefix, Sep: ".", Proxy: sourcetest.NewProxy(t, s.addr),
		NewSource: func(t *testing.T, addr string) source.Source {
			src, err := redis.New(redis.Config{URL: "redis://" + addr, Patterns: []string{prefix + ".*"}})
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Send: func(ctx context.Context, msgs ...sourcetest.Msg) error { return s.publish(ctx, prefix, msgs...) },
	}
}

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: newFixture})
}
