package sinktest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Gate is a TCP proxy in front of a real broker that can play one that is down: Close drops
// every connection through it and refuses new ones (accepting and closing them at once) until
// Open.
type Gate struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed bool // refusing connections
	over   bool // the test is over
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // the accept loop and every forwarding goroutine
}

// NewGate starts an open gate on a free loopback port to target, and stops it, every
// connection with it, when the test ends.
func NewGate(t testing.TB, target string) *Gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sinktest: gate: %v", err)
	}
	g := &Gate{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	g.wg.Go(g.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		g.mu.Lock()
		g.over = true
		g.dropLocked()
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

// Addr is the gate's host:port, to dial instead of the broker's.
func (g *Gate) Addr() string { return g.ln.Addr().String() }

// Close drops every connection and refuses new ones: the broker is down.
func (g *Gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.dropLocked()
}

// Open forwards new connections again: the broker is back.
func (g *Gate) Open() {
	g.mu.Lock()
	g.closed = false
	g.mu.Unlock()
}

func (g *Gate) dropLocked() {
	for c := range g.conns {
		_ = c.Close()
		delete(g.conns, c)
	}
}

func (g *Gate) accept() {
	for {
		client, err := g.ln.Accept()
		if err != nil {
			return // closed by the test's cleanup
		}
		g.mu.Lock()
		refuse := g.closed || g.over
		g.mu.Unlock()
		if refuse {
			_ = client.Close()
			continue
		}
		server, err := net.Dial("tcp", g.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		g.mu.Lock()
		if g.closed || g.over {
			g.mu.Unlock()
			_ = client.Close()
			_ = server.Close()
			continue
		}
		g.conns[client], g.conns[server] = struct{}{}, struct{}{}
		g.mu.Unlock()
		g.wg.Go(func() { g.pipe(server, client) })
		g.wg.Go(func() { g.pipe(client, server) })
	}
}

// pipe copies from src to dst until either ends, then closes both, so that the other
// direction ends too.
func (g *Gate) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	g.mu.Lock()
	delete(g.conns, dst)
	delete(g.conns, src)
	g.mu.Unlock()
}
