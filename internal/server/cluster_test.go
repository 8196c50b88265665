package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/sourcetest"
)

// A server in a cluster answers ingest with the ids the log gave, stores a repeated
// Idempotency-Key or envelope id once, and shows the log in GET /v1/sources and /metrics.
func TestClusterIngestIDs(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	cfg, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
sources:
  - {name: in, type: http}
  - {name: demo, type: demo, rate: 1}
cluster:
  nats: {url: %q}
  stream_prefix: %s
  node: solo
  lease_ttl: 1s
`, urls, prefix))
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	post := func(query, contentType, body string, header ...string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/sources/in/messages"+query, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", query, resp.StatusCode, b)
		}
		return strings.TrimSpace(string(b))
	}
	if got := post("", "application/json", `{"a":1}`, "Idempotency-Key", "k1"); got != `{"accepted":1,"ids":["in:1"]}` {
		t.Errorf("first: %s", got)
	}
	if got := post("", "application/json", `{"a":1}`, "Idempotency-Key", "k1"); got != `{"accepted":1,"ids":["in:1"]}` {
		t.Errorf("a repeat of k1: %s, want the first one's id", got)
	}
	got := post("?envelope=true", "application/x-ndjson", "{\"id\":\"e1\",\"body\":1}\n{\"body\":2}\n{\"id\":\"e1\",\"body\":3}\n")
	if got != `{"accepted":3,"ids":["in:2","in:3","in:2"]}` {
		t.Errorf("envelopes: %s", got)
	}
	got = post("?stream=true", "application/x-ndjson", "4\n5\n")
	if got != `{"accepted":2,"ids":["in:4","in:5"]}` {
		t.Errorf("streamed: %s", got)
	}

	sourcetest.Eventually(t, 10*time.Second, func() bool {
		var srcs []struct {
			Name       string
			Leader     string
			LogLastSeq uint64 `json:"log_last_seq"`
		}
		resp, err := r.client.Get(r.url + "/v1/sources")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&srcs) != nil {
			return false
		}
		return len(srcs) == 2 && srcs[0].Name == "demo" && srcs[0].Leader == "solo" && srcs[1].LogLastSeq == 5
	}, "/v1/sources: demo led by solo, the log of in at 5")
	resp, err := r.client.Get(r.url + "/v1/sources")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"leader":"solo"`, `"log_first_seq":1,"log_last_seq":5,"lag":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/v1/sources lacks %s: %s", want, b)
		}
	}
	resp, err = r.client.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`streamux_source_leader{leader="solo",source="demo"} 1`, `streamux_source_log_last_seq{source="in"} 5`, `streamux_source_log_lag{source="in"} 0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A node keeps in its data directory the highest id it routed: a log lost with its servers
// (here, deleted while no node ran) is made again after it, so no old id names a new message.
func TestClusterLostLogGoesOnAfterTheLastID(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() { sourcetest.DeleteStreams(urls, prefix) })
	dir := t.TempDir()
	cfg := func() *config.Config {
		c, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
data_dir: %s
sources: [{name: in, type: http}]
cluster: {nats: {url: %q}, stream_prefix: %s, node: solo}
`, dir, urls, prefix))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ingest := func(r *running) string {
		t.Helper()
		resp, err := r.client.Post(r.url+"/v1/sources/in/messages", "application/x-ndjson", strings.NewReader("1\n2\n3\n"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	r := start(t, cfg())
	if got := ingest(r); got != `{"accepted":3,"ids":["in:1","in:2","in:3"]}` {
		t.Fatalf("first run: %s", got)
	}
	sourcetest.Eventually(t, 10*time.Second, func() bool { return lastSeq(t, r, "in") == 3 }, "the node reads its ingest")
	if _, err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	sourcetest.DeleteStreams(urls, prefix)
	r = start(t, cfg())
	if got := ingest(r); got != `{"accepted":3,"ids":["in:4","in:5","in:6"]}` {
		t.Errorf("after the log was lost: %s, want the ids after the last", got)
	}
}

// lastSeq is the last_seq of source name on r.
func lastSeq(t *testing.T, r *running, name string) uint64 {
	t.Helper()
	resp, err := r.client.Get(r.url + "/v1/sources")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var srcs []struct {
		Name     string
		Counters struct {
			LastSeq uint64 `json:"last_seq"`
		}
	}
	if json.NewDecoder(resp.Body).Decode(&srcs) != nil {
		return 0
	}
	for _, s := range srcs {
		if s.Name == name {
			return s.Counters.LastSeq
		}
	}
	return 0
}
