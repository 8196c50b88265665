package redisstreams_test

import (
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/source/redisstreams"
	"github.com/streamux/streamux/internal/sourcetest"
)

func TestConfigProblems(t *testing.T) {
	good := func(change func(*redisstreams.Config)) redisstreams.Config {
		c := redisstreams.Config{Conn: redis.Conn{URL: "redis://h:6379"}, Stream: "orders", Group: "streamux"}
		change(&c)
		return c
	}
	for _, c := range []struct {
		cfg  redisstreams.Config
		want string
	}{
		{good(func(c *redisstreams.Config) { c.URL = "" }), "url is required"},
		{good(func(c *redisstreams.Config) { c.URL = "http://h:6379" }), "url:"},
		{good(func(c *redisstreams.Config) { c.TLS.ServerName = "x" }), "use rediss://"},
		{good(func(c *redisstreams.Config) { c.ConnectTimeout = -time.Second }), "connect_timeout"},
		{good(func(c *redisstreams.Config) { c.Stream = "" }), "stream is required"},
		{good(func(c *redisstreams.Config) { c.Group = "" }), "group is required"},
		{good(func(c *redisstreams.Config) { c.Start = ">" }), `start ">": must be $`},
		{good(func(c *redisstreams.Config) { c.Start = "now" }), `start "now"`},
		{good(func(c *redisstreams.Config) { c.Start = "1-2-3" }), `start "1-2-3"`},
		{good(func(c *redisstreams.Config) { c.Start = "-1" }), `start "-1"`},
		{good(func(c *redisstreams.Config) { c.Start = "1-" }), `start "1-"`},
		{good(func(c *redisstreams.Config) { c.Start = "99999999999999999999" }), "start"},
		{good(func(c *redisstreams.Config) { c.Count = -1 }), "count -1"},
		{good(func(c *redisstreams.Config) { c.Count = redisstreams.MaxCount + 1 }), "count"},
		{good(func(c *redisstreams.Config) { c.Block = -time.Second }), "block"},
		{good(func(c *redisstreams.Config) { c.Block = time.Microsecond }), "block 1µs: must be at least 1ms"},
		{good(func(c *redisstreams.Config) { c.ClaimIdle = -time.Second }), "claim_idle"},
		{good(func(c *redisstreams.Config) { c.Fields = "yaml" }), `fields "yaml"`},
		{good(func(c *redisstreams.Config) { c.Fields, c.BodyField = "json", "body" }), "body_field \"body\": only with fields: headers"},
	} {
		if all := sourcetest.Problems(c.cfg.Validate()); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	// Every problem at once.
	if errs := (&redisstreams.Config{Count: -1}).Validate(); len(errs) != 4 {
		t.Errorf("an empty config with a bad count: %d problems, want 4 (url, stream, group, count): %q", len(errs), sourcetest.Problems(errs))
	}
	// A password in the URL is not repeated in an error about the URL.
	bad := good(func(c *redisstreams.Config) { c.URL = "redis://u:s3cret@h:6379/notadb" })
	for _, err := range bad.Validate() {
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the password leaks: %v", err)
		}
	}
	for _, start := range []string{"$", "0", "0-0", "1700000000000", "1700000000000-5", "18446744073709551615-18446744073709551615"} {
		c := good(func(c *redisstreams.Config) { c.Start = start })
		if errs := c.Validate(); len(errs) != 0 {
			t.Errorf("start %q: %v", start, errs)
		}
	}
	if _, err := redisstreams.New(good(func(c *redisstreams.Config) { c.Group = "" })); err == nil || !strings.HasPrefix(err.Error(), "redis-streams: ") {
		t.Errorf("New with a bad config: %v", err)
	}
}

// The type is registered, and its configuration decodes strictly from YAML, the connection's
// keys (shared with the redis type) inline.
func TestYAML(t *testing.T) {
	if _, ok := source.Lookup(redisstreams.Type); !ok {
		t.Fatalf("type %q is not registered", redisstreams.Type)
	}
	c, err := config.Parse([]byte(`
sources:
  - name: orders
    type: redis-streams
    url: redis://127.0.0.1:6379/2
    connect_timeout: 3s
    stream: orders
    group: streamux
    consumer: node-a
    start: "0"
    count: 100
    block: 500ms
    claim_idle: 30s
    fields: json
    key_field: type
`))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.Sources[0].Spec.(*redisstreams.Config)
	want := redisstreams.Config{
		Conn:   redis.Conn{URL: "redis://127.0.0.1:6379/2", ConnectTimeout: 3 * time.Second},
		Stream: "orders", Group: "streamux", Consumer: "node-a", Start: "0", Count: 100,
		Block: 500 * time.Millisecond, ClaimIdle: 30 * time.Second, Fields: "json", KeyField: "type",
	}
	if !ok || *got != want {
		t.Fatalf("decoded %#v, want %#v", c.Sources[0].Spec, want)
	}
	for extra, want := range map[string]string{"body: payload": `unknown field "body"`, "start: latest": `start "latest"`} {
		_, err = config.Parse([]byte(`
sources:
  - name: orders
    type: redis-streams
    url: redis://127.0.0.1:6379
    stream: orders
    group: g
    ` + extra + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("with %s: %v, want an error saying %s", extra, err, want)
		}
	}
}

func TestDefaultConsumer(t *testing.T) {
	if c := redisstreams.DefaultConsumer(); !strings.HasPrefix(c, "streamux") {
		t.Errorf("DefaultConsumer() = %q", c)
	}
}
