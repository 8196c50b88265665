package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/sourcetest"
)

const wait = 30 * time.Second

// A channel by name and a pattern at once: the channel is the key; what came through the
// pattern says which pattern in redis_pattern.
func TestChannelsAndPatterns(t *testing.T) {
	s := newServer(t)
	prefix := sourcetest.UniqueName(t)
	src, err := redis.New(redis.Config{URL: "redis://" + s.addr, Channels: []string{prefix + ".exact"}, Patterns: []string{prefix + ".p.*"}})
	if err != nil {
		t.Fatal(err)
	}
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, "up", wait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// The last is a sentinel: Redis delivers one publisher's messages to a subscriber in the
	// order published, so once it has arrived, the unsubscribed channel's would have too.
	for _, ch := range []string{prefix + ".exact", prefix + ".p.one", prefix + ".other", prefix + ".exact"} {
		if err := s.client.Publish(ctx, ch, "to "+ch).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitLen(t, 3, wait)
	got := c.Messages()
	if got[0].Key != prefix+".exact" || got[0].Headers != nil || string(got[0].Body) != "to "+prefix+".exact" {
		t.Errorf("by name: key %q, headers %v, body %q", got[0].Key, got[0].Headers, got[0].Body)
	}
	if got[1].Key != prefix+".p.one" || got[1].Headers[redis.PatternHeader] != prefix+".p.*" {
		t.Errorf("by pattern: key %q, headers %v", got[1].Key, got[1].Headers)
	}
	if got[2].Key != prefix+".exact" {
		t.Errorf("third message: key %q, body %q; want the sentinel on %s", got[2].Key, got[2].Body, prefix+".exact")
	}
	if n := c.Len(); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
	if st := src.Counters().(redis.Counters); st.Messages != 3 || st.Connects != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct {
		cfg  redis.Config
		want string
	}{
		{redis.Config{Channels: []string{"a"}}, "url is required"},
		{redis.Config{URL: "http://h:6379", Channels: []string{"a"}}, "url:"},
		{redis.Config{URL: "redis://h:6379"}, "channels or patterns is required"},
		{redis.Config{URL: "redis://h:6379", Channels: []string{""}}, "empty channel"},
		{redis.Config{URL: "redis://h:6379", Patterns: []string{""}}, "empty pattern"},
		{redis.Config{URL: "redis://h:6379", Channels: []string{"a"}, PingInterval: -time.Second}, "ping_interval"},
		{redis.Config{URL: "redis://h:6379", Channels: []string{"a"}, TLS: redis.TLS{ServerName: "x"}}, "use rediss://"},
	} {
		if all := sourcetest.Problems(c.cfg.Validate()); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	// A password in the URL is not repeated in an error about the URL.
	bad := redis.Config{URL: "redis://u:s3cret@h:6379/notadb", Channels: []string{"a"}}
	for _, err := range bad.Validate() {
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the password leaks: %v", err)
		}
	}
	good := redis.Config{URL: "rediss://u:p@h:6380/2", Patterns: []string{"orders.*"}}
	if errs := good.Validate(); len(errs) != 0 {
		t.Errorf("a good config: %v", errs)
	}
}

// A stop while the server has not answered the handshake returns at once, not after the
// connect timeout.
func TestStopWhileConnecting(t *testing.T) {
	sourcetest.StopWhileConnecting(t, func(addr string) source.Source {
		src, err := redis.New(redis.Config{URL: "redis://" + addr, Channels: []string{"x"}, ConnectTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return src
	})
}
