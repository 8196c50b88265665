package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// An id names one message forever: streamux restarted many times over, cleanly (SIGTERM) and
// not (SIGKILL), never gives a number of an earlier run to another message, and a client that
// resumes from an earlier run's id, over every transport and with Last-Event-ID, gets a gap that
// says so, then this run's messages — never a silent splice of two runs.
func TestRestartsNeverReuseIDs(t *testing.T) {
	cfg := writeFile(t, "streamux.yaml", "sources:\n  - name: demo\n    type: demo\n    rate: 2000\n")
	data := filepath.Join(filepath.Dir(cfg), "streamux-data") // the default: beside the config

	seen := map[uint64]int{} // every seq any run delivered, with the run that did
	var maxSeq uint64
	lastID := ""
	for run := range 6 {
		kill := run%2 == 1
		s := serve(t, "-config", cfg)

		if lastID != "" {
			for _, r := range resumers {
				t.Run(fmt.Sprintf("run%d/%s", run, r.name), func(t *testing.T) {
					first := r.first(t, s, lastID)
					if first.Type == "gap" {
						if first.Reason != "restart" || first.Source != "demo" || first.Missed == 0 {
							t.Fatalf("resuming from %s after a restart: %+v, want a gap with reason restart", lastID, first)
						}
						return
					}
					// No gap: the client had every message of the earlier run, which stopped
					// cleanly, and this run goes on right after it.
					if first.Type != "message" || first.Seq != seqOf(t, lastID)+1 {
						t.Fatalf("resuming from %s after a restart: %+v, want a restart gap or the next number", lastID, first)
					}
				})
			}
		}

		st := s.openNDJSON(t, "source=demo")
		read := func(ev event) {
			if r, dup := seen[ev.Seq]; dup {
				t.Fatalf("run %d: %s was already run %d's", run, ev.ID, r)
			}
			if ev.Seq <= maxSeq {
				t.Fatalf("run %d: %s is not after %d, the highest number of an earlier run", run, ev.ID, maxSeq)
			}
			seen[ev.Seq] = run
			lastID = ev.ID
		}
		for range 200 {
			read(st.nextMessage(t))
		}
		if kill {
			if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			s.wait(10 * time.Second)
		} else {
			go s.stop() // the stream is read to its end meanwhile
		}
		// What the stream carried up to its end is this run's too.
		for st.lines.Scan() {
			var ev event
			if err := json.Unmarshal(st.lines.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type == "message" {
				read(ev)
			}
		}
		st.close()
		if !kill {
			s.wait(10 * time.Second)
		}
		for seq := range seen {
			maxSeq = max(maxSeq, seq)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "demo.seq")); err != nil {
		t.Fatalf("the data directory beside the config: %v", err)
	}
}

func seqOf(t *testing.T, id string) uint64 {
	t.Helper()
	var seq uint64
	if _, err := fmt.Sscanf(id[strings.LastIndexByte(id, ':')+1:], "%d", &seq); err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return seq
}

// A resumer opens a stream that resumes after id one way, and returns its first event that is
// not a status.
type resumer struct {
	name  string
	first func(t *testing.T, s *server, id string) event
}

var resumers = []resumer{
	{"ndjson", func(t *testing.T, s *server, id string) event {
		st := s.openNDJSON(t, "source=demo&from="+id)
		defer st.close()
		for {
			if ev := st.next(t); ev.Type != "status" {
				return ev
			}
		}
	}},
	{"sse-from", func(t *testing.T, s *server, id string) event { return firstSSE(t, s, "source=demo&from="+id, "") }},
	{"sse-last-event-id", func(t *testing.T, s *server, id string) event { return firstSSE(t, s, "source=demo", id) }},
	{"websocket", func(t *testing.T, s *server, id string) event {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/v1/stream?source=demo&from="+id, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var ev event
			if err := c.ReadJSON(&ev); err != nil {
				t.Fatal(err)
			}
			if ev.Type != "status" {
				return ev
			}
		}
	}},
}

// firstSSE reads an SSE stream of query, sent with Last-Event-ID lastID if set, up to its first
// event that is not a status; the SSE id: line must be the event's id.
func firstSSE(t *testing.T, s *server, query, lastID string) event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/stream?"+query), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE %s: %s", query, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimPrefix(line[5:], " ")
		case line == "" && data != "":
			var ev event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("SSE data %q: %v", data, err)
			}
			if ev.Type == "message" && id != ev.ID {
				t.Fatalf("SSE id: %q for event %s", id, ev.ID)
			}
			if ev.Type != "status" {
				return ev
			}
			id, data = "", ""
		}
	}
	t.Fatalf("SSE stream ended: %v", sc.Err())
	return event{}
}
