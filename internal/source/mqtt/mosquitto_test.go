package mqtt_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/sourcetest"
)

// mosquittoEnv names the environment variable that gives the Mosquitto binary the tests start
// brokers of their own with; without it, mosquitto on PATH.
const mosquittoEnv = "STREAMUX_TEST_MOSQUITTO"

// mosquitto is a Mosquitto broker of the test's own, a process started from the machine's
// binary with a configuration of the test's: the persistent-session tests need a queue longer
// than the machine broker's (max_queued_messages is 1,000 there, by default, and the suite
// leaves more than that for a session), and to restart the broker. Without the binary the test
// is skipped, or fails if CI=true. The broker is stopped when the test ends.
type mosquitto struct {
	t    testing.TB
	bin  string
	dir  string // its configuration, log and persistence file
	addr string // 127.0.0.1:port, the same across restarts
	cmd  *exec.Cmd
	// exited receives the process's end from the goroutine that waits for it; nil while the
	// broker is stopped.
	exited <-chan error
}

// mosquittoConf is what a test's broker differs in from Mosquitto's defaults.
type mosquittoConf struct {
	// persistence saves sessions and queued messages to the test's directory when the broker
	// stops (SIGTERM), and loads them when it starts.
	persistence bool
	// maxQueued is max_queued_messages: 0 is no limit.
	maxQueued int
}

// startMosquitto starts a broker with conf on a free loopback port and waits until it accepts
// connections.
func startMosquitto(t testing.TB, conf mosquittoConf) *mosquitto {
	t.Helper()
	bin := os.Getenv(mosquittoEnv)
	if bin == "" {
		bin = sourcetest.RequireCommand(t, "mosquitto")
	}
	// Started as root, Mosquitto runs as the user mosquitto, which must reach and write the
	// directory: not one under t.TempDir's, which only its owner may enter.
	dir, err := os.MkdirTemp("", "streamux-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cfg := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages %d\nlog_dest file %s\n",
		port, conf.maxQueued, filepath.Join(dir, "mosquitto.log"))
	if conf.persistence {
		cfg += fmt.Sprintf("persistence true\npersistence_location %s/\n", dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, bin: bin, dir: dir, addr: addr}
	m.start()
	t.Cleanup(func() {
		m.stop(syscall.SIGTERM)
		if t.Failed() {
			m.showLog()
		}
	})
	return m
}

// start starts the broker (again) and waits until it accepts connections.
func (m *mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- m.cmd.Wait() }() // reaped by stop, through exited
	m.exited = exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case err := <-exited:
			m.exited = nil
			m.showLog()
			m.t.Fatalf("mosquitto exited at start: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto does not accept connections at %s: %v", m.addr, err)
		}
	}
}

// stop stops the broker with sig and waits for it: SIGTERM saves its sessions first (with
// persistence), SIGKILL loses what it had not saved. Stopping a stopped broker does nothing.
func (m *mosquitto) stop(sig syscall.Signal) {
	m.t.Helper()
	if m.exited == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		m.t.Errorf("mosquitto did not stop within 10s of %v", sig)
	}
	m.exited = nil
}

// showLog puts the broker's log in the test's output.
func (m *mosquitto) showLog() {
	b, err := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.t.Logf("mosquitto log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	m.t.Logf("mosquitto log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
}
