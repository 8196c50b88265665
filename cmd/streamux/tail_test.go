package main_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tailLine is what tail prints for a message: time, id, key, body.
var tailLine = regexp.MustCompile(`^(\S+) (\S+):(\d+) (\S+) (.*)$`)

type tailed struct {
	id   string
	seq  uint64
	key  string
	body string
}

// messages parses the message lines tail has printed so far.
func messages(t *testing.T, out string) []tailed {
	t.Helper()
	var got []tailed
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "-- ") {
			continue
		}
		m := tailLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("tail printed %q, want TIME ID KEY BODY", line)
		}
		if _, err := time.Parse(time.RFC3339, m[1]); err != nil {
			t.Errorf("tail printed time %q: %v", m[1], err)
		}
		seq, _ := strconv.ParseUint(m[3], 10, 64)
		got = append(got, tailed{id: m[2] + ":" + m[3], seq: seq, key: m[4], body: m[5]})
	}
	return got
}

func oddN(t *testing.T, m tailed) {
	t.Helper()
	var b struct{ N int64 }
	if err := json.Unmarshal([]byte(m.body), &b); err != nil || m.key != "odd" || b.N%2 != 1 {
		t.Errorf("tail printed %+v, want an odd number", m)
	}
}

// waitMessages waits until tail has printed at least n message lines and returns them.
func (p *proc) waitMessages(t *testing.T, n int) []tailed {
	t.Helper()
	var got []tailed
	eventually(t, 15*time.Second, strconv.Itoa(n)+" lines from tail", func() bool {
		if p.exited() {
			t.Fatalf("tail exited: %v\nstderr:\n%s", p.err, p.stderr)
		}
		got = messages(t, p.stdout.String())
		return len(got) >= n
	})
	return got
}

// tail against the running binary prints the matching messages and exits 0 on SIGTERM.
func TestTail(t *testing.T) {
	t.Parallel()
	s := serve(t)
	tl := start(t, "tail", "-url", s.url(""), `key == "odd"`)
	got := tl.waitMessages(t, 3)
	for i, m := range got {
		oddN(t, m)
		if !strings.HasPrefix(m.id, "demo:") {
			t.Errorf("id %q, want demo:SEQ", m.id)
		}
		if i > 0 && m.seq <= got[i-1].seq {
			t.Errorf("seq %d after %d", m.seq, got[i-1].seq)
		}
	}
	if err := tl.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := tl.wait(10 * time.Second); code != 0 {
		t.Errorf("tail: exit status %d after SIGTERM, want 0", code)
	}
	s.stop()
}

// -json prints each event as the server sent it.
func TestTailJSON(t *testing.T) {
	t.Parallel()
	s := serve(t)
	tl := start(t, "tail", "-json", "-source", "demo", "-url", s.url("/"), `key == "even"`)
	eventually(t, 15*time.Second, "a JSON line from tail", func() bool {
		return strings.Count(tl.stdout.String(), "\n") >= 2
	})
	for _, line := range strings.Split(strings.TrimSpace(tl.stdout.String()), "\n") {
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("tail -json printed %q: %v", line, err)
		}
		if ev.Type == "message" && (ev.Key != "even" || ev.Source != "demo") {
			t.Errorf("event %+v, want an even demo message", ev)
		}
	}
	tl.stop()
	s.stop()
}

// A bad predicate: exit status 1, the server's error, and a caret under the position.
func TestTailBadPredicate(t *testing.T) {
	t.Parallel()
	s := serve(t)
	for _, pred := range []string{
		`key == "odd" && bogus`,
		`key == "é😀" && bogus`, // the caret counts characters, not bytes
	} {
		tl := start(t, "tail", "-url", s.url(""), pred)
		if code := tl.wait(10 * time.Second); code != 1 {
			t.Fatalf("tail %q: exit status %d, want 1", pred, code)
		}
		msg := tl.stderr.String()
		if !strings.Contains(msg, "400") || !strings.Contains(msg, "bogus") {
			t.Errorf("tail %q: stderr does not show the 400 and the error:\n%s", pred, msg)
		}
		lines := strings.Split(msg, "\n")
		found := false
		for i := 0; i+1 < len(lines); i++ {
			if lines[i] != "  "+pred {
				continue
			}
			found = true
			caret := []rune(lines[i+1])
			want := len([]rune("  " + pred[:strings.Index(pred, "bogus")]))
			if strings.TrimSpace(string(caret)) != "^" || len(caret)-1 != want {
				t.Errorf("tail %q: caret line %q, want the ^ under bogus (column %d):\n%s", pred, lines[i+1], want, msg)
			}
		}
		if !found {
			t.Errorf("tail %q: stderr does not echo the predicate for the caret:\n%s", pred, msg)
		}
		if tl.stdout.String() != "" {
			t.Errorf("tail %q printed on stdout: %q", pred, tl.stdout)
		}
	}
	// An unknown source will not change by retrying either.
	tl := start(t, "tail", "-url", s.url(""), "-source", "nope", "")
	if code := tl.wait(10 * time.Second); code != 1 {
		t.Errorf("tail -source nope: exit status %d, want 1", code)
	}
	if !strings.Contains(tl.stderr.String(), "404") {
		t.Errorf("tail -source nope: stderr does not show the 404:\n%s", tl.stderr)
	}
	s.stop()
}

// When the server goes away, tail says so and keeps trying; when a server is back on the same
// address, tail prints its messages again.
func TestTailReconnects(t *testing.T) {
	t.Parallel()
	s := serve(t)
	tl := start(t, "tail", "-url", s.url(""), `key == "odd"`)
	before := len(tl.waitMessages(t, 2))

	s.stop()
	eventually(t, 10*time.Second, "tail reports the lost stream", func() bool {
		return strings.Contains(tl.stderr.String(), "reconnecting")
	})
	if tl.exited() {
		t.Fatalf("tail exited when the server went away: %v\n%s", tl.err, tl.stderr)
	}

	// A new process on the same address: its sequence numbers start again at 1.
	s2 := serveOn(t, s.addr, "-listen", s.addr)
	got := tl.waitMessages(t, before+2)
	for _, m := range got[before:] {
		oddN(t, m)
	}
	if err := tl.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := tl.wait(10 * time.Second); code != 0 {
		t.Errorf("tail: exit status %d after SIGTERM, want 0", code)
	}
	s2.stop()
}

// When its stream is cut, tail resumes after the last id it printed: every odd number once,
// with no hole and no duplicate across the reconnect.
func TestTailResumes(t *testing.T) {
	t.Parallel()
	s := serve(t)
	tl := start(t, "tail", "-url", s.url(""), `key == "odd"`)
	tl.waitMessages(t, 2)

	// End tail's subscription from the server's side.
	var subs []struct {
		ID uint64 `json:"id"`
	}
	resp, err := client.Get(s.url("/v1/subscriptions"))
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&subs)
	resp.Body.Close()
	if err != nil || len(subs) != 1 {
		t.Fatalf("GET /v1/subscriptions: %+v, %v; want tail's one", subs, err)
	}
	req, _ := http.NewRequest(http.MethodDelete, s.url("/v1/subscriptions/"+strconv.FormatUint(subs[0].ID, 10)), nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE subscription: %s", resp.Status)
	}
	eventually(t, 10*time.Second, "tail reconnects", func() bool {
		return strings.Contains(tl.stderr.String(), "reconnecting")
	})
	n := len(messages(t, tl.stdout.String()))
	got := tl.waitMessages(t, n+3)
	for i, m := range got {
		oddN(t, m)
		if i > 0 && m.seq != got[i-1].seq+2 {
			t.Errorf("after %s came %s: want every odd number once", got[i-1].id, m.id)
		}
	}
	if strings.Contains(tl.stdout.String(), "-- gap") {
		t.Errorf("tail printed a gap although the history holds everything:\n%s", tl.stdout)
	}
	tl.stop()
	s.stop()
}

// With no server at all, tail keeps trying (it is not an error a user must restart it for).
func TestTailNoServer(t *testing.T) {
	t.Parallel()
	tl := start(t, "tail", "-url", "http://"+freeAddr(t), "")
	eventually(t, 10*time.Second, "two reconnect lines", func() bool {
		return strings.Count(tl.stderr.String(), "reconnecting") >= 2
	})
	if err := tl.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := tl.wait(10 * time.Second); code != 0 {
		t.Errorf("tail: exit status %d after SIGTERM, want 0", code)
	}
}
