// Package buildinfo says which streamux this is: the module version and the commit it was built
// from, as the Go toolchain records them in the binary (runtime/debug.ReadBuildInfo). Both
// `streamux version` and the streamux_build_info metric read it here, so they never disagree.
//
// Nothing here is set with -ldflags: `go install github.com/streamux/streamux/cmd/streamux@vX`
// records the version, and `go build` or `go install ./cmd/streamux` in a git checkout records
// the commit, its time and whether the tree had uncommitted changes.
//
// Concurrency: Read may be called from any goroutine; it returns a new Info each time.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"time"
)

// Info is what the binary knows of its own build.
type Info struct {
	// Version is the main module's version: a tag (v1.2.3) when installed by version, a
	// pseudo-version (v0.0.0-20261207143751-4abdd79c1f0e+dirty) when built in a git checkout,
	// or "(devel)" when the toolchain recorded none.
	Version string `json:"version"`
	// Revision is the commit the binary was built from (vcs.revision); "" when not built from
	// a checkout, or built with -buildvcs=false.
	Revision string `json:"revision,omitempty"`
	// Time is the commit's time (vcs.time); zero when unknown.
	Time time.Time `json:"time,omitzero"`
	// Modified is true when the checkout had changes that were not committed (vcs.modified):
	// the binary is then not exactly Revision.
	Modified bool `json:"modified"`
	// GoVersion is the toolchain that built the binary (go1.26.8).
	GoVersion string `json:"go_version"`
	// Path is the main module's path.
	Path string `json:"path,omitempty"`
}

// Read returns the running binary's build information. A binary built without module support
// (which go build no longer does) has only its GoVersion, and "(devel)" as its version.
func Read() Info {
	info := Info{Version: "(devel)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	info.Path = bi.Main.Path
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one line `streamux version` prints: version, then the commit and its time
// when known, "modified" when the tree was, and the toolchain.
func (i Info) String() string {
	s := "streamux " + i.Version
	if i.Revision != "" {
		s += " commit " + i.Revision
		if !i.Time.IsZero() {
			s += " (" + i.Time.UTC().Format(time.RFC3339) + ")"
		}
		if i.Modified {
			s += " modified"
		}
	}
	return s + " " + i.GoVersion
}
