package config

import (
	"testing"
	"time"
)

// The limits of issue 16 on request bodies and ingest requests: defaults, and a body buffer
// that could never take the largest body is refused.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("sources:\n  - {name: in, type: http}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.IngestRequests != 256 || l.IngestRequestsPerClient != 16 || l.BodyBufferBytes != 64<<20 ||
		l.BodyReadTimeout != 30*time.Second || l.BodyMinRate != 1024 || l.IngestIdleTimeout != 10*time.Minute {
		t.Fatalf("defaults: %+v", l)
	}
	// A larger max_body_bytes raises the default buffer with it.
	c, err = Parse([]byte("sources:\n  - {name: in, type: http, max_body_bytes: 100000000}\n"))
	if err != nil || c.Limits.BodyBufferBytes != 200000000 {
		t.Fatalf("body_buffer_bytes with max_body_bytes 100000000: %v, %v", c.Limits.BodyBufferBytes, err)
	}
	wantAll(t, parseErr(t, "sources:\n  - {name: in, type: http}\nlimits:\n  body_buffer_bytes: 1000\n  body_min_rate: -1\n  ingest_idle_timeout: -1s\n"),
		"line 4: limits.body_buffer_bytes: 1000 is less than the max_body_bytes 8388608 of an http source",
		"line 5: limits.body_min_rate: must be positive, not -1", "line 6: limits.ingest_idle_timeout: must be positive, not -1s")
}

func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	if _, err := Parse([]byte("allowed_hosts: [streamux.example, .corp.example, '*']\n")); err != nil {
		t.Fatal(err)
	}
	wantAll(t, parseErr(t, "allowed_hosts: ['https://streamux.example', 'streamux.example:8080', '']\n"),
		`allowed_hosts: "https://streamux.example" is not a host name`,
		`allowed_hosts: "streamux.example:8080" is not a host name`,
		`allowed_hosts: "" is not a host name`)
}
