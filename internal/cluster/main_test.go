package cluster_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind, once the shared in-process cluster
// (which lives for the whole run) is shut down.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.tc != nil {
		shared.tc.shutdown()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
