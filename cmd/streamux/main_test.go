package main_test

// These tests build the real binary once and run it as a subprocess on a free port, talking to it
// with real HTTP, SSE and WebSocket clients, the way a user does.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/sourcetest"
)

// bin is the streamux binary that TestMain builds.
var bin string

// raceBuild is set by race_test.go when the tests run with -race; the binary is then built with
// -race too, so that a data race in the server fails the test that provoked it.
var raceBuild bool

// client is every test's HTTP client; TestMain closes its idle connections before goleak looks.
var transport = &http.Transport{}
var client = &http.Client{Transport: transport}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "streamux-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "streamux")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		return 1
	}
	code := m.Run()
	transport.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is a running streamux (or streamux tail) process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // cmd.Wait's; read after done
}

// start runs the binary with args. The process is killed at the end of the test if it is still
// running; a test that wants a clean exit calls stop or wait itself.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with variables added to the environment.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	if raceBuild {
		// A race-enabled binary sleeps 1 s at exit by default; a race is reported when it
		// happens anyway.
		p.cmd.Env = append(p.cmd.Env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the process does; stop, wait and the cleanup below wait for it
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.stderr.String(), "DATA RACE") {
			t.Errorf("%s: the race detector fired:\n%s", p, p.stderr)
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p, p.stderr)
		}
	})
	return p
}

func (p *proc) String() string { return strings.Join(p.cmd.Args[1:], " ") }

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s: still running after %v", p, d)
	}
	if p.cmd.ProcessState == nil {
		p.t.Fatalf("%s: %v", p, p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and requires exit status 0 within 10 s, as the contract says.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		p.t.Fatalf("%s: exit status %d after SIGTERM, want 0", p, code)
	}
}

// handedOut are the addresses freeAddr has returned: the kernel may give a port that was just
// closed to the next listener on port 0, and so the same port to two nodes of one test before
// either listens on it.
var handedOut struct {
	sync.Mutex
	addrs map[string]bool
}

// freeAddr returns a loopback address with a port that nothing listens on, and that no other
// call of this process has returned.
func freeAddr(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut.addrs[addr] {
			if handedOut.addrs == nil {
				handedOut.addrs = make(map[string]bool)
			}
			handedOut.addrs[addr] = true
			return addr
		}
	}
	t.Fatal("freeAddr: the kernel keeps giving ports handed out already")
	return ""
}

// server is a streamux serving on addr.
type server struct {
	*proc
	addr string
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// serve starts streamux on a free port with -listen and args, and waits until /healthz answers.
func serve(t *testing.T, args ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	return serveOn(t, addr, append([]string{"-listen", addr}, args...)...)
}

// serveOn starts streamux with args, which make it listen on addr, and waits until it answers.
func serveOn(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	return serveEnv(t, nil, addr, args...)
}

// serveEnv is serveOn with variables added to the environment.
func serveEnv(t *testing.T, env []string, addr string, args ...string) *server {
	t.Helper()
	s := &server{proc: startEnv(t, env, args...), addr: addr}
	eventually(t, 15*time.Second, "/healthz answers", func() bool {
		if s.exited() {
			t.Fatalf("%s exited early (%v):\n%s", s, s.err, s.stderr)
		}
		resp, err := client.Get(s.url("/healthz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	sourcetest.Eventually(t, d, cond, "%s", what)
}

type sourceInfo struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	State string `json:"state"`
}

func (s *server) sources(t *testing.T) map[string]sourceInfo {
	t.Helper()
	resp, err := client.Get(s.url("/v1/sources"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/sources: %s", resp.Status)
	}
	var list []sourceInfo
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("GET /v1/sources: %v", err)
	}
	out := make(map[string]sourceInfo, len(list))
	for _, si := range list {
		out[si.Name] = si
	}
	return out
}

// waitUp waits until every named source is up.
func (s *server) waitUp(t *testing.T, names ...string) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("sources %v up", names), func() bool {
		got := s.sources(t)
		for _, n := range names {
			if got[n].State != "up" {
				return false
			}
		}
		return true
	})
}

// event is one event of a stream, as API.md defines it.
type event struct {
	Type    string            `json:"type"`
	ID      string            `json:"id"`
	Source  string            `json:"source"`
	Seq     uint64            `json:"seq"`
	Key     string            `json:"key"`
	Time    string            `json:"time"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	Missed  uint64            `json:"missed"`
	Reason  string            `json:"reason"`
	State   string            `json:"state"`
}

// ndjson is an open NDJSON stream.
type ndjson struct {
	resp   *http.Response
	lines  *bufio.Scanner
	cancel context.CancelFunc
}

// openNDJSON subscribes with query (already encoded) and returns once the server has answered
// 200; the subscription exists from then on.
func (s *server) openNDJSON(t *testing.T, query string) *ndjson {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/stream?"+query), nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /v1/stream?%s: %s %s", query, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	st := &ndjson{resp: resp, lines: bufio.NewScanner(resp.Body), cancel: cancel}
	t.Cleanup(st.close)
	return st
}

func (st *ndjson) close() {
	st.cancel()
	st.resp.Body.Close()
}

// next returns the next event; the stream's context bounds the wait.
func (st *ndjson) next(t *testing.T) event {
	t.Helper()
	if !st.lines.Scan() {
		t.Fatalf("stream ended: %v", st.lines.Err())
	}
	var ev event
	if err := json.Unmarshal(st.lines.Bytes(), &ev); err != nil {
		t.Fatalf("bad line %q: %v", st.lines.Bytes(), err)
	}
	return ev
}

// nextMessage skips status events and returns the next message.
func (st *ndjson) nextMessage(t *testing.T) event {
	t.Helper()
	for {
		ev := st.next(t)
		switch ev.Type {
		case "message":
			return ev
		case "status":
			continue
		}
		t.Fatalf("unexpected event %+v", ev)
	}
}

// demoN is the n of a demo message's body.
func demoN(t *testing.T, ev event) int64 {
	t.Helper()
	var b struct {
		N *int64 `json:"n"`
	}
	if err := json.Unmarshal(ev.Body, &b); err != nil || b.N == nil {
		t.Fatalf("demo body %s: want {\"n\": N} (%v)", ev.Body, err)
	}
	return *b.N
}

// writeFile writes a file in the test's temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
