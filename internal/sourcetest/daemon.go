package sourcetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is a server of the test's own (a redis-server, a RabbitMQ node) run as a child
// process on a port of its own, which the test stops with a signal and starts again on the same
// port and data: a broker restart under a source, which the machine's shared servers must not
// undergo. Its cleanup stops it (SIGTERM, then SIGKILL of its process group) and, if the test
// failed, shows the end of its output.
type Daemon struct {
	t    testing.TB
	spec DaemonSpec
	out  *lockedBuffer

	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's error; nil while stopped
}

// DaemonSpec says how to run a Daemon.
type DaemonSpec struct {
	Name string   // for messages: "redis-server"
	Path string   // the program
	Args []string // its arguments
	Env  []string // added to the environment
	Dir  string   // its working directory
	// Addr is the host:port it accepts connections on once it is ready.
	Addr string
	// PIDFile, if set, holds the pid of the process to signal (a wrapper script's server, as
	// RabbitMQ's beam under rabbitmq-server); else the child itself is signalled.
	PIDFile string
	// StartTimeout bounds a start. Defaults to 60s.
	StartTimeout time.Duration
}

// StartDaemon starts spec's program and waits until it accepts connections at spec.Addr.
func StartDaemon(t testing.TB, spec DaemonSpec) *Daemon {
	t.Helper()
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = 60 * time.Second
	}
	d := &Daemon{t: t, spec: spec, out: &lockedBuffer{}}
	t.Cleanup(func() {
		d.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s output (the end):\n%s", spec.Name, d.out.tail(60))
		}
	})
	d.Start()
	return d
}

// Addr is where the daemon accepts connections.
func (d *Daemon) Addr() string { return d.spec.Addr }

// Start starts the daemon (again) and waits until it accepts connections. It returns how long
// that took.
func (d *Daemon) Start() time.Duration {
	d.t.Helper()
	began := time.Now()
	cmd := exec.Command(d.spec.Path, d.spec.Args...)
	cmd.Dir = d.spec.Dir
	cmd.Env = append(os.Environ(), d.spec.Env...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, for the last-resort kill
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start %s: %v", d.spec.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaped by Stop, through exited
	d.cmd, d.exited = cmd, exited
	deadline := began.Add(d.spec.StartTimeout)
	for {
		c, err := net.DialTimeout("tcp", d.spec.Addr, time.Second)
		if err == nil {
			_ = c.Close()
			return time.Since(began)
		}
		select {
		case err := <-exited:
			d.exited = nil
			d.t.Fatalf("%s exited at start (%v):\n%s", d.spec.Name, err, d.out.tail(60))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s does not accept connections at %s after %v", d.spec.Name, d.spec.Addr, d.spec.StartTimeout)
		}
	}
}

// Stop sends sig to the daemon and waits for it to exit: up to a minute, then its process
// group is killed. SIGTERM lets it save what it keeps; SIGKILL does not. Stopping a stopped
// daemon does nothing. It returns how long the daemon took to exit.
func (d *Daemon) Stop(sig syscall.Signal) time.Duration {
	d.t.Helper()
	if d.exited == nil {
		return 0
	}
	began := time.Now()
	pid := d.cmd.Process.Pid
	if d.spec.PIDFile != "" {
		if b, err := os.ReadFile(d.spec.PIDFile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
				pid = p
			}
		}
	}
	_ = syscall.Kill(pid, sig)
	select {
	case <-d.exited:
	case <-time.After(time.Minute):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
		d.t.Errorf("%s did not stop within a minute of %v", d.spec.Name, sig)
	}
	d.exited = nil
	return time.Since(began)
}

// FreePort returns a loopback TCP port that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// RedisServerEnv names the environment variable that gives the redis-server to run, when it
// is not on PATH.
const RedisServerEnv = "STREAMUX_TEST_REDIS_SERVER"

// StartRedis starts a redis-server of the test's own on a free loopback port, with its data
// (an append-only file, appendonly yes, synced every second) in a temporary directory, so that
// a restart, after SIGTERM or SIGKILL, finds what it had acknowledged. Without redis-server the
// test is skipped, or fails if CI=true.
func StartRedis(t testing.TB) *Daemon {
	t.Helper()
	bin := os.Getenv(RedisServerEnv)
	if bin == "" {
		bin = RequireCommand(t, "redis-server")
	}
	dir := t.TempDir()
	port := FreePort(t)
	return StartDaemon(t, DaemonSpec{
		Name: "redis-server", Path: bin, Dir: dir, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"},
	})
}

// RabbitMQServerEnv names the environment variable that gives RabbitMQ's rabbitmq-server
// script to run a node of the test's own (default: /usr/lib/rabbitmq/bin/rabbitmq-server, the
// Debian package's, which unlike /usr/sbin/rabbitmq-server runs as the calling user).
const RabbitMQServerEnv = "STREAMUX_TEST_RABBITMQ_SERVER"

// StartRabbitMQ starts a RabbitMQ node of the test's own: its own node name, AMQP port and
// distribution port, its data, logs and Erlang cookie in a temporary directory, no plugins
// (so no management listener), guest allowed from loopback. The machine's node is left alone.
// It takes 5–10 s to start on this machine (2 cores, loaded). Without RabbitMQ the test is
// skipped, or fails if CI=true. The node's AMQP URL is "amqp://guest:guest@" + Addr() + "/".
func StartRabbitMQ(t testing.TB) *Daemon {
	t.Helper()
	bin := os.Getenv(RabbitMQServerEnv)
	if bin == "" {
		bin = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	}
	if _, err := os.Stat(bin); err != nil {
		missing(t, fmt.Sprintf("RabbitMQ's server script %s: %v (set %s)", bin, err, RabbitMQServerEnv))
	}
	// Not under t.TempDir: a node's socket paths and Erlang's limits like a short path, and a
	// name of its own keeps two tests' nodes apart.
	dir, err := os.MkdirTemp("", "sxrmq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	port, dist := FreePort(t), FreePort(t)
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nloopback_users = none\n", port)
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	node := "sxtest" + filepath.Base(dir)[len("sxrmq-"):]
	return StartDaemon(t, DaemonSpec{
		Name: "rabbitmq-server " + node, Path: bin, Dir: dir,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Env: []string{
			"RABBITMQ_NODENAME=" + node + "@localhost",
			"RABBITMQ_NODE_PORT=" + strconv.Itoa(port),
			"RABBITMQ_DIST_PORT=" + strconv.Itoa(dist),
			"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
			"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
			"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq"),
			"RABBITMQ_PID_FILE=" + filepath.Join(dir, "pid"),
			"HOME=" + dir, // its own Erlang cookie
		},
		PIDFile:      filepath.Join(dir, "pid"),
		StartTimeout: 2 * time.Minute,
	})
}

// lockedBuffer is a daemon's output, written by its process while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		b.b.Reset()
	}
	return b.b.Write(p)
}

// tail is the last n lines written.
func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(b.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
