package sourcetest

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/streamux/streamux/internal/source"
)

// Proxy forwards TCP connections to a real server, so that a fixture can drop its source's
// connections from the server's side (Kill) where the server has no command for it. The server
// stays up, and a source that reconnects through the proxy reaches it again.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool           // the test is over: connections are closed, not tracked
	wg     sync.WaitGroup // the accept loop and every forwarding goroutine
}

// NewProxy starts a proxy on a free loopback port that forwards to target, and stops it, every
// connection with it, when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sourcetest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.Kill()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port, for the source to dial instead of the server's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Kill closes every connection through the proxy, both ways, as a server dropping its clients
// would. New connections are still forwarded.
func (p *Proxy) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // the listener was closed by the test's cleanup
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client, server) {
			continue
		}
		p.wg.Go(func() { p.pipe(server, client) })
		p.wg.Go(func() { p.pipe(client, server) })
	}
}

// track records the connections, or closes them and reports false once the test is over.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		if p.closed {
			_ = c.Close()
		} else {
			p.conns[c] = struct{}{}
		}
	}
	return !p.closed
}

// pipe copies from src to dst until either ends (Kill ends both on purpose), then closes both,
// so that the other direction ends too, and forgets them.
func (p *Proxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// PrefixFixture is a Fixture for a stream that keeps no backlog (publish/subscribe), made
// private to a test by a name prefix, and reached through a Proxy so that Kill can drop the
// source's connections: NATS subjects, Redis channels, MQTT topics.
type PrefixFixture struct {
	// Prefix comes before every key (UniqueName), joined to it by Sep: "." for NATS and Redis,
	// "/" for MQTT.
	Prefix, Sep string
	Proxy       *Proxy
	// NewSource makes a source that dials addr, the proxy, and reads everything under Prefix.
	NewSource func(t *testing.T, addr string) source.Source
	// Send publishes msgs, in order, each to Prefix+Sep+its key, through the server's own
	// client, and returns once the server has them.
	Send func(ctx context.Context, msgs ...Msg) error
}

var _ Keyer = (*PrefixFixture)(nil)

// Source makes a source through the proxy.
func (f *PrefixFixture) Source(t *testing.T) source.Source { return f.NewSource(t, f.Proxy.Addr()) }

// Publish sends msgs with Send.
func (f *PrefixFixture) Publish(ctx context.Context, msgs ...Msg) error { return f.Send(ctx, msgs...) }

// Kill drops the connections through the proxy.
func (f *PrefixFixture) Kill(context.Context) error {
	f.Proxy.Kill()
	return nil
}

// Depth: such a stream keeps no backlog for a subscriber.
func (f *PrefixFixture) Depth(context.Context) (int, error) { return 0, errors.ErrUnsupported }

// Key is the key the source gives a message published with key k: the whole name.
func (f *PrefixFixture) Key(k string) string { return f.Prefix + f.Sep + k }
