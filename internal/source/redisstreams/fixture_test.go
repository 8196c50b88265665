package redisstreams_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/source/redisstreams"
	"github.com/streamux/streamux/internal/sourcetest"
)

// redisURLEnv names the environment variable that points the tests at another Redis.
const redisURLEnv = "STREAMUX_TEST_REDIS_URL"

// server is a test's own connection to Redis, for adding entries and looking at the group: the
// one on 127.0.0.1:6379 that every development and CI machine runs, or $STREAMUX_TEST_REDIS_URL.
// Without one the test is skipped, or fails if CI=true.
type server struct {
	url    string
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
	return &server{url: raw, client: c}
}

// newStream returns a stream name no other test uses, deleted (with its groups) when the test
// ends.
func (s *server) newStream(t testing.TB) string {
	t.Helper()
	name := "streamux-test:" + sourcetest.UniqueName(t)
	t.Cleanup(func() { _ = s.client.Del(context.Background(), name).Err() })
	return name
}

// add appends msgs to stream, in order, as entries of the fields key, body and each header,
// and returns their ids.
func (s *server) add(ctx context.Context, stream string, msgs ...sourcetest.Msg) ([]string, error) {
	pipe := s.client.Pipeline()
	cmds := make([]*goredis.StringCmd, len(msgs))
	for i, m := range msgs {
		values := []any{"key", m.Key, "body", m.Body}
		for k, v := range m.Headers {
			values = append(values, k, v)
		}
		cmds[i] = pipe.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: values})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids, nil
}

// groupInfo returns the group's entry in XINFO GROUPS.
func (s *server) groupInfo(ctx context.Context, stream, group string) (goredis.XInfoGroup, error) {
	groups, err := s.client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return goredis.XInfoGroup{}, err
	}
	for _, g := range groups {
		if g.Name == group {
			return g, nil
		}
	}
	return goredis.XInfoGroup{}, fmt.Errorf("stream %s has no group %s", stream, group)
}

// killClients closes, from the server's side, every connection named name (CLIENT SETNAME;
// the source names its connections after its consumer), and returns how many it closed.
func (s *server) killClients(ctx context.Context, name string) (int, error) {
	list, err := s.client.ClientList(ctx).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		var id string
		named := false
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch {
			case k == "id":
				id = v
			case k == "name" && v == name:
				named = true
			}
		}
		if !named || id == "" {
			continue
		}
		if err := s.client.ClientKillByFilter(ctx, "ID", id).Err(); err != nil && !strings.Contains(err.Error(), "No such client") {
			return n, err
		}
		n++
	}
	return n, nil
}

// config is a source's configuration for stream, with the group and consumer given.
func (s *server) config(stream, group, consumer string) redisstreams.Config {
	return redisstreams.Config{Conn: redis.Conn{URL: s.url}, Stream: stream, Group: group, Consumer: consumer}
}

func newSource(t testing.TB, c redisstreams.Config) *redisstreams.Source {
	t.Helper()
	src, err := redisstreams.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// fixture is one stream of its own, read by one group through one consumer name: every Source
// of the fixture is the same reader, resuming where the last one stopped (Options.Durable is
// what the type always does). The key is the entry's field "key", the body its field "body".
type fixture struct {
	*server
	stream, consumer string
}

const fixtureGroup = "streamux"

func newFixture(t *testing.T, _ sourcetest.Options) sourcetest.Fixture {
	s := newServer(t)
	f := &fixture{server: s, stream: s.newStream(t)}
	f.consumer = "c-" + f.stream
	return f
}

func (f *fixture) Source(t *testing.T) source.Source {
	c := f.config(f.stream, fixtureGroup, f.consumer)
	c.Start, c.KeyField = redisstreams.StartAll, "key"
	return newSource(t, c)
}

// Publish adds msgs one XADD at a time, each answered before the next is sent, as a producer
// does that waits for each entry's id: a pipeline of thousands fills the stream far faster
// than any one reader empties it, which DrainedWithoutClients would take for a reader that
// does not drain.
func (f *fixture) Publish(ctx context.Context, msgs ...sourcetest.Msg) error {
	for _, m := range msgs {
		if _, err := f.add(ctx, f.stream, m); err != nil {
			return err
		}
	}
	return nil
}

// Kill closes the source's connections from the server's side (CLIENT KILL).
func (f *fixture) Kill(ctx context.Context) error {
	_, err := f.killClients(ctx, f.consumer)
	return err
}

// Depth is the group's backlog: the entries not yet delivered to it (its lag). Those delivered
// and not yet acknowledged (pending) are the source's in flight, as a RabbitMQ queue's
// unacknowledged messages are not its ready ones.
func (f *fixture) Depth(ctx context.Context) (int, error) {
	g, err := f.groupInfo(ctx, f.stream, fixtureGroup)
	if err != nil {
		return 0, err
	}
	if g.Lag < 0 {
		return 0, fmt.Errorf("the lag of group %s is unknown", fixtureGroup)
	}
	return int(g.Lag), nil
}

func TestConformance(t *testing.T) {
	// Every read is acknowledged with the next command: a killed source has taken at most
	// one read's entries, count, without Redis knowing.
	sourcetest.Run(t, sourcetest.Harness{
		New: newFixture, Headers: true, AtLeastOnce: true, Durable: true, InFlight: redisstreams.DefaultCount,
	})
}
