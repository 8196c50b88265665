package cluster_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind, once the shared in-process cluster
// and the benchmarks' embedded server (which live for the whole run) are shut down.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.tc != nil {
		shared.tc.Shutdown()
	}
	if embedded.tc != nil {
		embedded.tc.Shutdown()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
