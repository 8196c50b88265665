package sourcetest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/source"
)

// StopWhileConnecting checks that a source stopped while its server has accepted the connection
// and answered nothing returns at once, with nil, rather than after its connect timeout.
// newSource makes the source for the silent server's host:port.
func StopWhileConnecting(t *testing.T, newSource func(addr string) source.Source) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() { // the silent server; ended by ln.Close
		c, err := ln.Accept()
		if err == nil {
			held <- c
		}
	}()
	src := newSource(ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func() {}, NewCollector().Emit) }() // waited for below
	conn := <-held
	defer conn.Close()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after a stop: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still connecting 5s after the stop")
	}
}

// Problems joins what a configuration's Validate says, for a test to look for one problem.
func Problems(errs []error) string {
	all := make([]string, len(errs))
	for i, err := range errs {
		all[i] = err.Error()
	}
	return strings.Join(all, "; ")
}
