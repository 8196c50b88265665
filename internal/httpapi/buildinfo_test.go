package httpapi_test

import (
	"runtime"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/streamux/streamux/internal/buildinfo"
)

// /metrics has streamux_build_info, 1, labelled with what buildinfo reads from the binary: the
// same version and toolchain that `streamux version` prints.
func TestMetricsBuildInfo(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := e.client.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	ms := fams["streamux_build_info"].GetMetric()
	if len(ms) != 1 {
		t.Fatalf("streamux_build_info: %d series, want 1", len(ms))
	}
	if v := ms[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("streamux_build_info = %v, want 1", v)
	}
	labels := map[string]string{}
	for _, l := range ms[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	bi := buildinfo.Read()
	want := map[string]string{"version": bi.Version, "goversion": runtime.Version()}
	for name, v := range want {
		if labels[name] != v || v == "" {
			t.Errorf("label %s = %q, want %q", name, labels[name], v)
		}
	}
	if _, ok := labels["revision"]; !ok {
		t.Errorf("no revision label: %v", labels)
	}
}
