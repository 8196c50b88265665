package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/sourcetest"
)

// TestMain makes the test binary the command when the bench starts it as its server subprocess
// (os.Executable() server ...), so that the test runs the command's own child path.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "server" {
		main()
		return
	}
	os.Exit(m.Run())
}

// A fanout run, small, with the server as a subprocess of this command, as by default.
func TestFanoutWithChildServer(t *testing.T) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"fanout", "-clients", "6", "-keys", "3", "-rate", "200", "-duration", "600ms", "-warmup", "100ms", "-bare=false", "-quiet", "-json"}
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("%v\nstderr: %s", err, errb.String())
	}
	var rep struct {
		Results []struct {
			Server    string  `json:"server"`
			Delivered float64 `json:"delivered_per_s"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Results) == 0 || rep.Results[0].Server != "streamux" || rep.Results[0].Delivered <= 0 {
		t.Errorf("report %s", out.String())
	}
}

// A cluster run, small, on the JetStream server of $STREAMUX_TEST_NATS_URL (default
// nats://127.0.0.1:4222; skipped without one, failed if CI=true): every stage reports, and the
// run's streams are gone afterwards.
func TestClusterScenario(t *testing.T) {
	natsURL := sourcetest.RequireJetStream(t)
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"cluster", "-nats-url", natsURL, "-clients", "6", "-keys", "3", "-rate", "200", "-duration", "600ms",
		"-warmup", "100ms", "-ramp-step", "300ms", "-max-posters", "2", "-quiet", "-json"}
	if err := run(ctx, args, &out, &errb); err != nil {
		t.Fatalf("%v\nstderr: %s", err, errb.String())
	}
	var rep struct {
		StreamPrefix string `json:"stream_prefix"`
		Results      []struct {
			Section   string  `json:"section"`
			Group     string  `json:"group"`
			Server    string  `json:"server"`
			Clients   int     `json:"clients"`
			Delivered float64 `json:"delivered_per_s"`
			P99ms     float64 `json:"p99_ms"`
			CPUPerMsg float64 `json:"cpu_us_per_message"`
			Posters   int     `json:"posters"`
			Accepted  float64 `json:"msgs_per_s"`
			Routed    float64 `json:"routed_per_s"`
			Dropped   int64   `json:"dropped"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, out.String())
	}
	seen := map[string]bool{}
	appended, routed := map[string]float64{}, map[string]float64{}
	for _, r := range rep.Results {
		key := r.Section + "/" + r.Group + "/" + r.Server
		seen[key] = true
		switch {
		case r.Section == "append":
			// A step of -ramp-step may see no request end on a loaded machine: the rates are
			// checked over the section (below), not per step.
			if r.Posters <= 0 {
				t.Errorf("%s: %d posters", key, r.Posters)
			}
			appended[r.Group] += r.Accepted
			routed[r.Group] += r.Routed
		case r.Section != "append" && r.Clients > 0 && (r.Delivered <= 0 || r.P99ms <= 0):
			t.Errorf("%s: %d clients, delivered %v/s, p99 %v ms", key, r.Clients, r.Delivered, r.P99ms)
		case r.Server != "nats-server" && r.Section != "append" && r.CPUPerMsg <= 0:
			t.Errorf("%s: CPU %v µs/msg", key, r.CPUPerMsg)
		}
		if r.Dropped > 0 {
			t.Logf("%s: %d dropped (the drain gives up after a second without deliveries)", key, r.Dropped)
		}
	}
	for group, n := range appended {
		if n <= 0 || routed[group] <= 0 {
			t.Errorf("append/%s: %v msg/s accepted, %v routed over the section", group, n, routed[group])
		}
	}
	for _, want := range []string{
		"hop/alone/streamux", "hop/3 nodes/node 1 (ingest)", "hop/3 nodes/node 2", "hop/3 nodes/node 3",
		"append/alone/streamux", "append/1 node/node 1",
		"fanout/alone/streamux", "fanout/1 node/node 1", "fanout/3 nodes/all nodes", "fanout/3 nodes/node 3",
	} {
		if !seen[want] {
			t.Errorf("no row %q in %s", want, out.String())
		}
	}
	if !strings.HasPrefix(rep.StreamPrefix, "SXB") {
		t.Fatalf("stream prefix %q", rep.StreamPrefix)
	}
	nc, err := natsgo.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		if strings.HasPrefix(n, rep.StreamPrefix) || strings.HasPrefix(n, "KV_"+rep.StreamPrefix) {
			t.Errorf("stream %s is left after the run", n)
		}
	}
	if err := names.Err(); err != nil {
		t.Error(err)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out, &errb); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errb.String(), "Usage: streamux-bench SCENARIO") {
		t.Errorf("-h: %v\n%s", err, errb.String())
	}
	for _, args := range [][]string{{}, {"nope"}, {"fanout", "extra"}} {
		errb.Reset()
		if err := run(context.Background(), args, &out, &errb); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error\n%s", args, err, errb.String())
		}
	}
}
