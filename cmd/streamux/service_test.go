package main_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitPath is the systemd unit the repository ships.
const unitPath = "../../dist/streamux.service"

// systemdAnalyze is the path of systemd-analyze, or "" after skipping the test (failing it when
// CI=true) where there is none.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	const path = "/usr/bin/systemd-analyze"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", path, err)
		}
		t.Skipf("%s not found (%v): the unit is not checked", path, err)
	}
	return path
}

// unitFor writes dir/streamux.service: the shipped unit with the real binary in place of
// /usr/local/bin/streamux, since systemd-analyze verify requires every command to exist.
func unitFor(t *testing.T, dir string) string {
	t.Helper()
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/streamux ")) {
		t.Fatalf("%s: ExecStart does not run /usr/local/bin/streamux, which this test replaces", unitPath)
	}
	path := filepath.Join(dir, "streamux.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/streamux"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The unit is one systemd accepts as it is: systemd-analyze verify finds nothing to say of it,
// not even a key it would ignore.
func TestServiceUnitVerifies(t *testing.T) {
	t.Parallel()
	sa := systemdAnalyze(t)
	path := unitFor(t, t.TempDir())
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
	// Warnings (an unknown key, a bad value that is ignored) leave the exit status 0.
	if bytes.Contains(out, []byte("streamux.service")) {
		t.Errorf("systemd-analyze verify has something to say:\n%s", out)
	} else if len(out) > 0 {
		t.Logf("systemd-analyze verify, of other units:\n%s", out)
	}
}

// The unit keeps the hardening it was written with: each setting below is there, and systemd's
// own measure of the service's exposure stays low.
func TestServiceUnitHardening(t *testing.T) {
	t.Parallel()
	sa := systemdAnalyze(t)
	root := t.TempDir()
	dir := filepath.Join(root, "etc", "systemd", "system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := unitFor(t, dir)
	settings := unitSettings(t, path)
	for key, want := range map[string]string{
		"DynamicUser":             "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"NoNewPrivileges":         "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter":        "@system-service",
		"CapabilityBoundingSet":   "",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"StateDirectory":          "streamux",
	} {
		if got, ok := settings[key]; !ok || !slices.Contains(got, want) {
			t.Errorf("%s: %s=%s is not set (%s=%q)", unitPath, key, want, key, got)
		}
	}
	// The server keeps its data in the state directory that systemd makes for it.
	if exec := settings["ExecStart"]; len(exec) != 1 || !strings.Contains(exec[0], " -data-dir /var/lib/streamux ") {
		t.Errorf("%s: ExecStart %q does not put the data in /var/lib/streamux", unitPath, exec)
	}

	// 0 is a service that can do nothing, 10 one that can do anything; this unit measured 1.3.
	// The threshold is on a scale of 0 to 100: 20 is 2.0.
	out, err := exec.Command(sa, "security", "--offline=true", "--root="+root, "--threshold=20", "streamux.service").CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v: the exposure is above 2:\n%s", err, out)
	}
}

// unitSettings reads a unit file's settings: key to values, in the order written.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not a setting", path, line)
		}
		settings[strings.TrimSpace(key)] = append(settings[strings.TrimSpace(key)], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}

// ExecReload sends SIGHUP, so the unit may have one only if the server reloads on SIGHUP
// rather than ending: this finds out which it does, so that the unit follows when it changes.
func TestServiceUnitReload(t *testing.T) {
	t.Parallel()
	hasReload := slices.ContainsFunc(strings.Split(readFile(t, unitPath), "\n"), func(l string) bool {
		return strings.HasPrefix(strings.TrimSpace(l), "ExecReload=")
	})
	s := serve(t)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !hasReload {
		// SIGHUP's default action ends the process; the unit must not send it.
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("streamux outlived SIGHUP for 10s: if it reloads now, give %s its ExecReload=/bin/kill -HUP $MAINPID", unitPath)
		}
		return
	}
	eventually(t, 5*time.Second, "/healthz answers after SIGHUP", func() bool {
		if s.exited() {
			t.Fatalf("%s has ExecReload, but SIGHUP ended streamux:\n%s", unitPath, s.stderr)
		}
		resp, err := client.Get(s.url("/healthz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	s.stop()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
