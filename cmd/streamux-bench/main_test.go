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
