package netcut_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/netcut"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Bytes go both ways through the proxy; Cut ends the connection, and a new one works again.
func TestForwardsAndCuts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoed := make(chan struct{})
	go func() { // the echo server; ends when ln closes, waited for below
		defer close(echoed)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }() // ends with the connection
		}
	}()
	defer func() { ln.Close(); <-echoed }()

	p := netcut.Start(t, ln.Addr().String())
	roundTrip := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "ping\n" {
			t.Fatalf("echo %q, %v", line, err)
		}
		return c
	}
	c := roundTrip()
	p.Cut()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("a connection cut by the proxy still reads")
	}
	c.Close()
	roundTrip().Close()
	if p.Cuts() != 1 {
		t.Errorf("%d cuts, want 1", p.Cuts())
	}
	p.Close()
}
