package buildinfo

import (
	"runtime"
	"testing"
	"time"
)

func TestReadNamesTheToolchain(t *testing.T) {
	bi := Read()
	if bi.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", bi.GoVersion, runtime.Version())
	}
	if bi.Version == "" {
		t.Error("Version is empty; want a version or (devel)")
	}
}

func TestString(t *testing.T) {
	at := time.Date(2026, 12, 7, 14, 37, 51, 0, time.UTC)
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{Version: "v1.2.3", GoVersion: "go1.26.8"}, "streamux v1.2.3 go1.26.8"},
		{Info{Version: "(devel)", Revision: "4abdd79", Time: at, GoVersion: "go1.26.8"},
			"streamux (devel) commit 4abdd79 (2026-12-07T14:37:51Z) go1.26.8"},
		{Info{Version: "v0.0.0-x+dirty", Revision: "4abdd79", Modified: true, GoVersion: "go1.26.8"},
			"streamux v0.0.0-x+dirty commit 4abdd79 modified go1.26.8"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.in, got, tc.want)
		}
	}
}
