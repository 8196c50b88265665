package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// buildInfo is streamux version -json.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Time      string `json:"time"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
	Path      string `json:"path"`
}

// versionOf runs binary version -json.
func versionOf(t *testing.T, binary string) buildInfo {
	t.Helper()
	out, err := exec.Command(binary, "version", "-json").Output()
	if err != nil {
		t.Fatalf("%s version -json: %v", binary, err)
	}
	var bi buildInfo
	if err := json.Unmarshal(out, &bi); err != nil {
		t.Fatalf("%s version -json: %v:\n%s", binary, err, out)
	}
	return bi
}

// gitHead is the commit of HEAD in the repository at dir; the test skips where there is none
// (a source archive), unless CI says there must be.
func gitHead(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git rev-parse HEAD: %v", err)
		}
		t.Skipf("not a git checkout (git rev-parse HEAD: %v): no revision to compare", err)
	}
	return strings.TrimSpace(string(out))
}

// go install ./cmd/streamux from a clone, as docs/operations-keys.md says, makes a streamux
// whose version names the commit it was built from.
func TestInstallFromCheckoutNamesCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary again")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Others may commit while the build runs: the binary's commit is HEAD from before or after.
	before := gitHead(t, root)
	if fi, err := os.Stat(filepath.Join(root, ".git")); err == nil && !fi.IsDir() {
		// The go command looks for a .git directory: a linked worktree's .git file, or a
		// submodule's, gets no VCS stamp, whatever -buildvcs says.
		t.Skipf("%s is a git worktree (its .git is a file), which the go command does not stamp: clone the repository to test this", root)
	}
	gobin := t.TempDir()
	install := exec.Command("go", "install", "./cmd/streamux")
	install.Dir = root
	install.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=-buildvcs=auto")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install ./cmd/streamux: %v\n%s", err, out)
	}
	after := gitHead(t, root)
	binary := filepath.Join(gobin, "streamux")
	bi := versionOf(t, binary)
	if bi.Revision == "" || bi.Revision != before && bi.Revision != after {
		t.Errorf("version -json: revision %q, want HEAD %s", bi.Revision, after)
	}
	if bi.Path != "github.com/streamux/streamux" || bi.GoVersion != runtime.Version() || bi.Version == "" {
		t.Errorf("version -json: %+v", bi)
	}
	if _, err := time.Parse(time.RFC3339, bi.Time); err != nil {
		t.Errorf("version -json: time %q: %v", bi.Time, err)
	}
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	line := string(out)
	for _, want := range []string{"streamux " + bi.Version, "commit " + bi.Revision, bi.GoVersion} {
		if !strings.Contains(line, want) {
			t.Errorf("version: %q does not say %q", line, want)
		}
	}
	if strings.Contains(line, " modified ") != bi.Modified {
		t.Errorf("version: %q, but modified is %v", line, bi.Modified)
	}

	// The installed binary serves, and its /metrics names the same commit.
	addr := freeAddr(t)
	srv := exec.Command(binary, "-listen", addr)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	var labels map[string]string
	eventually(t, 15*time.Second, "/metrics answers", func() bool {
		labels = buildInfoLabels(t, "http://"+addr+"/metrics")
		return labels != nil
	})
	want := bi.Revision
	if bi.Modified {
		want += "-modified"
	}
	if labels["revision"] != want || labels["version"] != bi.Version {
		t.Errorf("streamux_build_info: %v, want revision %s and version %s", labels, want, bi.Version)
	}
}

// buildInfoLabels scrapes url and returns streamux_build_info's labels; nil when the server does
// not answer yet.
func buildInfoLabels(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	ms := fams["streamux_build_info"].GetMetric()
	if len(ms) != 1 || ms[0].GetGauge().GetValue() != 1 {
		t.Fatalf("streamux_build_info: %v", ms)
	}
	labels := map[string]string{}
	for _, l := range ms[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	return labels
}

// /metrics of the running server says the build that streamux version says.
func TestMetricsBuildInfoMatchesVersion(t *testing.T) {
	t.Parallel()
	bi := versionOf(t, bin)
	s := serve(t)
	got := buildInfoLabels(t, s.url("/metrics"))
	revision := bi.Revision
	if bi.Modified {
		revision += "-modified"
	}
	want := map[string]string{"version": bi.Version, "revision": revision, "goversion": bi.GoVersion}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("streamux_build_info{%s=%q}, want %q (version -json: %+v)", k, got[k], v, bi)
		}
	}
}

func TestVersionAndAuthUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "-yaml"}, "yaml"},
		{[]string{"auth"}, "streamux auth hash-key"},
		{[]string{"auth", "frob"}, `unknown command "frob"`},
		{[]string{"auth", "hash-key", "extra"}, `unexpected argument "extra"`},
		{[]string{"auth", "token", "-alg", "RS256"}, "-alg RS256 needs -private-key"},
	} {
		p := start(t, tc.args...)
		if code := p.wait(10 * time.Second); code != 2 {
			t.Errorf("streamux %q: exit status %d, want 2", tc.args, code)
		}
		if !strings.Contains(p.stderr.String(), tc.want) {
			t.Errorf("streamux %q: stderr does not contain %q:\n%s", tc.args, tc.want, p.stderr)
		}
	}
}
