package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/sourcetest"
)

// metricName is a metric a query names: streamux's own and the Go and process collectors'.
var metricName = regexp.MustCompile(`\b(?:streamux|go|process)_[a-z0-9_]+\b`)

// dashboardQueries is every expr of the Grafana dashboard's panels.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../dist/grafana/streamux.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// alertQueries is every expr of the alert rules, which are checked for the fields Prometheus
// requires (an unknown field fails, as promtool check rules would).
func alertQueries(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../dist/prometheus/streamux-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alert rules: %v", err)
	}
	var out []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert rule %+v: alert, expr, a severity label and a summary are required", r)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			out = append(out, r.Expr)
		}
	}
	if len(out) == 0 {
		t.Fatal("no alert rules")
	}
	return out
}

// scrapeNames is the names of the samples of a /metrics page.
func scrapeNames(t *testing.T, u string) map[string]bool {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// Every metric the Grafana dashboard and the alert rules query is one that a running streamux
// exports: three nodes of a cluster (whose log metrics exist only there) with a source, a
// webhook sink, clients that read, a predicate that fails on the messages and a refused
// request. A metric renamed in the code and not in them fails here.
func TestDashboardAndAlertsQueryRealMetrics(t *testing.T) {
	queries := append(dashboardQueries(t), alertQueries(t)...)
	urls := sourcetest.RequireJetStream(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	nodes, _ := startNodes(t, clusterSpec{
		urls:    oneURL(urls),
		sources: "  - {name: in, type: http}\n",
		extra: func(int) string {
			return fmt.Sprintf("limits: {webhook_allow_private: true}\nsinks: [{name: all, type: webhook, url: %q}]\n", hook.URL)
		},
	})
	var readers, failing []*reader
	for _, n := range nodes {
		readers = append(readers, n.openReader(t, "source=in", false, ""))
		failing = append(failing, n.openReader(t, "source=in&where="+url.QueryEscape("body.n.nope > 1"), false, ""))
		resp, err := client.Get(n.url("/v1/stream?where=" + url.QueryEscape("body.n >")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a bad predicate: %s, want 400", resp.Status)
		}
	}
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(`{"n":%d}`, i))
	}
	nodes[0].mustIngest("in", "", lines...)
	// The readers' messages are written (latency, write sizes); the failing predicate is
	// evaluated on the same messages, on every node, and counted below.
	for _, r := range readers {
		eventually(t, 30*time.Second, r.name+" read every message", func() bool {
			evs, err := r.snapshot()
			if err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
			n := 0
			for _, ev := range evs {
				if ev.Type == "message" {
					n++
				}
			}
			return n == len(lines)
		})
	}
	have := map[string]bool{}
	eventually(t, 30*time.Second, "every queried metric in the nodes' /metrics", func() bool {
		for _, n := range nodes {
			for name := range scrapeNames(t, n.url("/metrics")) {
				have[name] = true
			}
		}
		for _, q := range queries {
			for _, name := range metricName.FindAllString(q, -1) {
				if !have[name] {
					return false
				}
			}
		}
		return true
	})
	var missing []string
	for _, q := range queries {
		for _, name := range metricName.FindAllString(q, -1) {
			if !have[name] && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("queried and not exported: %v", missing)
	}
}
