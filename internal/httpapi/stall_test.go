package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/transport"
)

// stallProxy forwards TCP to target until paused; then it stops reading from the server, as a
// peer whose network went away does (no FIN, no RST, no acknowledgements).
type stallProxy struct {
	ln     net.Listener
	paused chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, paused: make(chan struct{})}
	p.wg.Add(1)
	go func() { // the accept loop; close waits for it
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				return
			}
			if tc, ok := up.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(8 << 10)
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(up, c) }() // client → server; close waits
			go func() {                                              // server → client until paused; close waits
				defer p.wg.Done()
				buf := make([]byte, 4096)
				for {
					select {
					case <-p.paused:
						return
					default:
					}
					n, err := up.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) pause() { close(p.paused) }

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// A TCP peer that stops acknowledging is cut by the write timeout (or its queue's policy), and
// ten fast clients on the same source receive every message meanwhile.
func TestStalledPeerIsCut(t *testing.T) {
	e := newEnv(t, envOptions{
		queue:        output.Limits{Events: 4096, Bytes: 64 << 20},
		transport:    transport.Options{WriteTimeout: 300 * time.Millisecond},
		smallBuffers: true,
	})
	proxy := newStallProxy(t, strings.TrimPrefix(e.srv.URL, "http://"))
	resp, err := e.client.Get("http://" + proxy.ln.Addr().String() + "/v1/stream?source=in")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	proxy.pause()

	fast := make([]*lineClient, 10)
	for i := range fast {
		fast[i] = e.ndjson(url.Values{"source": {"in"}}).(*lineClient)
		defer fast[i].close()
	}
	pad := strings.Repeat("y", 2048)
	const rounds, per = 40, 10
	for r := 0; r < rounds; r++ {
		batch := make([]msg, per)
		for j := range batch {
			batch[j] = msg{Key: "k", Body: json.RawMessage(fmt.Sprintf(`{"pad":"%s"}`, pad))}
		}
		e.publish("in", batch...)
		for _, f := range fast {
			for j := 0; j < per; j++ {
				if ev := f.next(t); ev.Seq != uint64(r*per+j+1) {
					t.Fatalf("fast client: seq %d, want %d", ev.Seq, r*per+j+1)
				}
			}
		}
	}
	waitFor(t, "the stalled client to be cut", func() bool { return e.sup.Count() == len(fast) })
}
