// Package browsertest finds the headless Chromium that the browser tests drive (chromedp): the
// web page's and the JavaScript client's.
package browsertest

import (
	"os"
	"os/exec"
	"testing"
)

// Path is the Chromium to run: $STREAMUX_CHROMIUM, else the first of Debian's chromium and its
// other usual names on PATH. Without one the test is skipped, unless CI=true: there a missing
// browser is a failure rather than a silently untested page. -short skips the test too.
func Path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	path := os.Getenv("STREAMUX_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		const msg = "no Chromium found: install Debian's chromium (apt-get install chromium), or set STREAMUX_CHROMIUM"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the browser test must run)")
		}
		t.Skip(msg)
	}
	return path
}
