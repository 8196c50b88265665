package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/auth"
)

// reloadConfig is a configuration with an admin key (which writes), the key "old-key" (reads in)
// unless dropKey, the http source "in", and the demo sources named in demos.
func reloadConfig(dropKey bool, demos ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "auth:\n  api_keys:\n    - name: admin\n      sha256: %s\n      admin: true\n      write: [\"*\"]\n", auth.HashKey("admin-key"))
	if !dropKey {
		fmt.Fprintf(&b, "    - name: old\n      sha256: %s\n      sources: [in]\n", auth.HashKey("old-key"))
	}
	b.WriteString("sources:\n  - name: in\n    type: http\n")
	for _, d := range demos {
		fmt.Fprintf(&b, "  - name: %s\n    type: demo\n    rate: 20\n", d)
	}
	return b.String()
}

// SIGHUP reloads the configuration while a client streams from a source that does not change
// and a producer ingests into it without pause: a source is added and one removed, a key
// removed; the stream on the unchanged source gets every message once, in order, with no gap;
// the removed source's stream is told it stopped and ends; the removed key's stream is closed
// as a revoked credential and the key is refused after. Then a configuration that does not
// validate changes nothing, and says why in the log and in POST /v1/reload's answer.
func TestReloadBySIGHUP(t *testing.T) {
	path := writeFile(t, "streamux.yaml", reloadConfig(false, "gone"))
	s := serve(t, "-config", path, "-data-dir", "memory")
	do := func(method, p, key string, body io.Reader) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, s.url(p), body)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	states := func() map[string]string {
		resp := do("GET", "/v1/sources", "admin-key", nil)
		defer resp.Body.Close()
		var list []sourceInfo
		_ = json.NewDecoder(resp.Body).Decode(&list)
		out := map[string]string{}
		for _, si := range list {
			out[si.Name] = si.State
		}
		return out
	}
	sources := func() map[string]bool {
		out := map[string]bool{}
		for n := range states() {
			out[n] = true
		}
		return out
	}
	waitUp := func(names ...string) {
		t.Helper()
		eventually(t, 10*time.Second, fmt.Sprintf("sources %v up", names), func() bool {
			got := states()
			for _, n := range names {
				if got[n] != "up" {
					return false
				}
			}
			return true
		})
	}
	waitUp("in", "gone")

	// The streams: on in (unchanged), on gone (removed), and the old key's.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(q string) *bufio.Scanner {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/v1/stream?"+q), nil)
		req.Header.Set("Authorization", "Bearer admin-key")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/stream?%s: %s", q, resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		return sc
	}
	inStream := open("source=in&policy=disconnect")
	goneStream := open("source=gone")
	old, _, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/v1/stream?source=in&token=old-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	// The producer: numbered messages into in, one request each, until told to stop.
	var sent atomic.Int64
	stop, stopped := make(chan struct{}), make(chan error, 1)
	go func() { // waited for below
		for n := 1; ; n++ {
			select {
			case <-stop:
				stopped <- nil
				return
			default:
			}
			resp := do("POST", "/v1/sources/in/messages?key=n", "admin-key", strings.NewReader(strconv.Itoa(n)))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				stopped <- fmt.Errorf("ingest %d: %s", n, resp.Status)
				return
			}
			sent.Store(int64(n))
		}
	}()
	eventually(t, 10*time.Second, "messages ingested before the reload", func() bool { return sent.Load() > 50 })

	if err := os.WriteFile(path, []byte(reloadConfig(true, "added")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reload applied", func() bool {
		got := sources()
		return got["in"] && got["added"] && !got["gone"]
	})
	waitUp("added")
	atReload := sent.Load()
	eventually(t, 10*time.Second, "messages ingested after the reload", func() bool { return sent.Load() > atReload+50 })
	close(stop)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	last := sent.Load()

	// Every message once, in order, no gap, no status of in's.
	for want := int64(1); want <= last; {
		if !inStream.Scan() {
			t.Fatalf("the stream of in ended after %d of %d messages: %v", want-1, last, inStream.Err())
		}
		var ev event
		if err := json.Unmarshal(inStream.Bytes(), &ev); err != nil {
			t.Fatalf("bad line %q", inStream.Bytes())
		}
		if ev.Type != "message" {
			t.Fatalf("the stream of in got %s after %d messages", inStream.Bytes(), want-1)
		}
		if got, _ := strconv.ParseInt(string(ev.Body), 10, 64); got != want {
			t.Fatalf("the stream of in got message %s, want %d", ev.Body, want)
		}
		want++
	}
	t.Logf("%d messages streamed across the reload (%d before it)", last, atReload)

	// The removed source's stream: its stopped status, then its end.
	var sawStopped bool
	for goneStream.Scan() {
		var ev event
		_ = json.Unmarshal(goneStream.Bytes(), &ev)
		if ev.Type == "status" && ev.Source == "gone" && ev.State == "stopped" {
			sawStopped = true
		}
	}
	if !sawStopped {
		t.Error("the stream of the removed source ended without its stopped status")
	}

	// The removed key: its stream closed as revoked, the key refused.
	_ = old.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err = old.ReadMessage()
		if err != nil {
			break
		}
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "credential revoked" {
		t.Errorf("the removed key's stream: want close 1008 credential revoked, got %v", err)
	}
	resp := do("GET", "/v1/sources", "old-key", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the removed key after the reload: %s, want 401", resp.Status)
	}
	if log := s.stderr.String(); !strings.Contains(log, "configuration reloaded") || !strings.Contains(log, "sources_added=[added]") {
		t.Errorf("the log does not say what the reload did:\n%s", log)
	}

	// A configuration that does not validate: nothing changes, the answer and the log say why.
	if err := os.WriteFile(path, []byte(reloadConfig(true)+"limits:\n  connections: -1\nsourcez: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp = do("POST", "/v1/reload", "admin-key", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var answer struct {
		Error struct {
			Code     string   `json:"code"`
			Problems []string `json:"problems"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &answer)
	if resp.StatusCode != http.StatusUnprocessableEntity || answer.Error.Code != "invalid_config" || len(answer.Error.Problems) < 2 ||
		!strings.Contains(string(body), "sourcez") || !strings.Contains(string(body), "connections") {
		t.Errorf("POST /v1/reload of a bad configuration: %s %s; want 422 invalid_config naming both problems", resp.Status, body)
	}
	t.Logf("POST /v1/reload of a bad configuration: %s %s", resp.Status, body)
	if got := sources(); !got["in"] || !got["added"] || len(got) != 2 {
		t.Errorf("the sources after a bad reload: %v, want in and added as they were", got)
	}
	eventually(t, 5*time.Second, "the bad configuration in the log", func() bool {
		return strings.Contains(s.stderr.String(), "does not validate") && strings.Contains(s.stderr.String(), "sourcez")
	})
	// By SIGHUP too: the process lives on, its sources as they were.
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if s.exited() {
		t.Fatalf("streamux exited on SIGHUP with a bad configuration:\n%s", s.stderr)
	}
	if got := sources(); !got["in"] || !got["added"] || len(got) != 2 {
		t.Errorf("the sources after a bad SIGHUP: %v", got)
	}

	// POST /v1/reload: admin only; its answer says what changed, and what needs a restart.
	// The source added is changed (its rate): a stream of it stays open through its restart.
	addedStream := open("source=added")
	changed := strings.Replace(reloadConfig(true, "added", "third"), "rate: 20", "rate: 40", 1)
	if err := os.WriteFile(path, []byte(changed+"history:\n  size: 5\nlimits:\n  connections: 500\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp = do("POST", "/v1/reload", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /v1/reload without a key: %s", resp.Status)
	}
	resp = do("POST", "/v1/reload", "admin-key", nil)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var sum struct {
		Changed          bool     `json:"changed"`
		SourcesRestarted []string `json:"sources_restarted"`
		SourcesAdded     []string `json:"sources_added"`
		LimitsChanged    []string `json:"limits_changed"`
		RestartNeeded    []string `json:"restart_needed"`
	}
	_ = json.Unmarshal(body, &sum)
	if resp.StatusCode != http.StatusOK || !sum.Changed || strings.Join(sum.SourcesAdded, ",") != "third" ||
		strings.Join(sum.SourcesRestarted, ",") != "added" ||
		strings.Join(sum.LimitsChanged, ",") != "limits.connections" || strings.Join(sum.RestartNeeded, ",") != "history" {
		t.Errorf("POST /v1/reload: %s %s", resp.Status, body)
	}
	t.Logf("POST /v1/reload: %s %s", resp.Status, body)
	// The changed source's stream: stopped, then up again, and its numbers go on, no gap.
	var seen []string
	var seq uint64
	for after := 0; after < 3; {
		if !addedStream.Scan() {
			t.Fatalf("the stream of the changed source ended: %v (states %v)", addedStream.Err(), seen)
		}
		var ev event
		_ = json.Unmarshal(addedStream.Bytes(), &ev)
		switch ev.Type {
		case "status":
			seen = append(seen, ev.State)
		case "message":
			if seq != 0 && ev.Seq != seq+1 {
				t.Fatalf("the changed source's message %d follows %d", ev.Seq, seq)
			}
			seq = ev.Seq
			if slices.Contains(seen, "up") {
				after++
			}
		default:
			t.Fatalf("the stream of the changed source got %s", addedStream.Bytes())
		}
	}
	if !slices.Contains(seen, "stopped") {
		t.Errorf("the changed source's stream saw the states %v, want stopped then up", seen)
	}
	s.stop()
}
