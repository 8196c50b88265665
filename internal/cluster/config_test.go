package cluster_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/cluster"
)

func decode(t *testing.T, src string) (cluster.Config, []string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return cluster.Decode(doc.Content[0])
}

func TestDecodeTheContractsExample(t *testing.T) {
	c, problems := decode(t, `
nats:
  url: nats://127.0.0.1:4222,nats://127.0.0.2:4222
  token: s3cret
  tls: {ca_file: "", server_name: nats.example}
stream_prefix: STREAMUX_
replicas: 3
storage: memory
max_age: 24h
max_bytes: 1073741824
max_msgs: 1000000
duplicate_window: 1m
lease_ttl: 5s
lease_poll: 100ms
node: web-1
`)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	want := cluster.Config{
		NATS:         cluster.NATS{URL: "nats://127.0.0.1:4222,nats://127.0.0.2:4222", Token: "s3cret"},
		StreamPrefix: "STREAMUX_", Replicas: 3, Storage: "memory", MaxAge: 24 * time.Hour,
		MaxBytes: 1 << 30, MaxMsgs: 1_000_000, DuplicateWindow: time.Minute, LeaseTTL: 5 * time.Second,
		LeasePoll: 100 * time.Millisecond, Node: "web-1",
	}
	want.NATS.TLS.ServerName = "nats.example"
	if c != want {
		t.Fatalf("decoded\n%+v\nwant\n%+v", c, want)
	}
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func TestDecodeIsStrict(t *testing.T) {
	_, problems := decode(t, `
nats:
  url: nats://127.0.0.1:4222
  credz: x
replica: 3
lease_ttl: soon
`)
	got := strings.Join(problems, "\n")
	for _, want := range []string{`line 4: unknown field "credz"`, `line 5: unknown field "replica"`, "line 6:"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	d := cluster.Config{NATS: cluster.NATS{URL: "nats://127.0.0.1:4222"}}.WithDefaults("127.0.0.1:8081")
	if d.StreamPrefix != "STREAMUX_" || d.Replicas != 1 || d.Storage != "file" || d.MaxAge != 24*time.Hour ||
		d.LeaseTTL != 5*time.Second || d.LeasePoll != 250*time.Millisecond || d.DuplicateWindow != 2*time.Minute ||
		d.MaxBytes != 0 || d.MaxMsgs != 0 {
		t.Fatalf("defaults: %+v", d)
	}
	if !strings.HasSuffix(d.Node, ":8081") || len(d.Node) <= len(":8081") {
		t.Fatalf("node %q: want <host>:8081", d.Node)
	}
	// A short TTL polls more often, a short max_age bounds the duplicate window.
	d = cluster.Config{LeaseTTL: 400 * time.Millisecond, MaxAge: 30 * time.Second}.WithDefaults("")
	if d.LeasePoll != 100*time.Millisecond || d.DuplicateWindow != 30*time.Second {
		t.Fatalf("poll %v window %v", d.LeasePoll, d.DuplicateWindow)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := cluster.Config{
		NATS:            cluster.NATS{URL: "http://x,nats://", Token: "t", User: "u", Creds: "/nonexistent/creds"},
		StreamPrefix:    "A.B",
		Replicas:        2,
		Storage:         "disk",
		MaxBytes:        -1,
		DuplicateWindow: 48 * time.Hour,
		LeaseTTL:        100 * time.Millisecond,
		Node:            "a\nb",
	}
	got := ""
	for _, err := range c.Validate() {
		got += err.Error() + "\n"
	}
	for _, want := range []string{
		`scheme must be nats or tls, not "http"`, "no host", "give one credential", "user and password go together",
		"nats.creds", "stream_prefix", "replicas 2", `storage "disk"`, "max_bytes", "duplicate_window", "lease_ttl", "node",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if errs := (&cluster.Config{}).Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "nats.url is required") {
		t.Fatalf("empty config: %v", errs)
	}
}

func TestStringHidesSecrets(t *testing.T) {
	c := cluster.Config{NATS: cluster.NATS{URL: "nats://user:pw@127.0.0.1:4222"}}.WithDefaults("")
	if s := c.String(); strings.Contains(s, "pw") || strings.Contains(s, "user") {
		t.Fatal(s)
	}
}
