// Package natstest is test support: a cluster of nats-servers with JetStream in the test's own
// process, on loopback ports of its own and storing in a temporary directory, for the tests
// that need servers they may kill and start again (which the shared nats-server on
// 127.0.0.1:4222, found with sourcetest.RequireJetStream, is not for).
//
// Start makes one for a test and shuts it down when the test ends; New makes one that lives
// longer (shared by a package's tests, shut down by its TestMain) and is shut down by its
// Shutdown. A Cluster's methods are not for concurrent use with Restart, Kill or Shutdown.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How long a server may take to accept connections, and the servers' JetStream to answer.
const (
	readyTimeout     = 20 * time.Second
	jetStreamTimeout = 60 * time.Second
)

// Cluster is n nats-servers with JetStream, named s1 … sn; server i (from 0) is s<i+1>. With
// n > 1 they are routed into one cluster; with n = 1 it is a lone server, as streamux would
// embed one.
type Cluster struct {
	opts    []*server.Options
	servers []*server.Server // nil where a server did not start
	dir     string
}

// Start starts n servers and waits until JetStream answers on each, failing t if they do not;
// they are shut down, and their files removed, when t ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := New(n)
	if err != nil {
		t.Fatalf("natstest: start %d nats-servers: %v", n, err)
	}
	t.Cleanup(c.Shutdown)
	return c
}

// New starts n servers and waits until JetStream answers on each. The caller shuts them down
// with Shutdown; on an error, New has already.
func New(n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("natstest: %d servers", n)
	}
	dir, err := os.MkdirTemp("", "streamux-natstest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, servers: make([]*server.Server, n)}
	ports, err := freePorts(2 * n)
	if err != nil {
		c.Shutdown()
		return nil, err
	}
	var routes []*url.URL
	for i := range n {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+i])})
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("s%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "streamux-test", Host: "127.0.0.1", Port: ports[n+i]}
			o.Routes = routes
		}
		c.opts = append(c.opts, o)
	}
	// Every server starts before any is waited for, so that the routes form at once.
	for i := range n {
		if err := c.launch(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	for i := range n {
		if err := c.ready(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.WaitJetStream(jetStreamTimeout); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// launch makes server i from its options and starts it.
func (c *Cluster) launch(i int) error {
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		return fmt.Errorf("natstest: server %s: %w", c.opts[i].ServerName, err)
	}
	s.Start()
	c.servers[i] = s
	return nil
}

// ready waits until server i accepts connections.
func (c *Cluster) ready(i int) error {
	if !c.servers[i].ReadyForConnections(readyTimeout) {
		return fmt.Errorf("natstest: server %s not ready after %v", c.opts[i].ServerName, readyTimeout)
	}
	return nil
}

// Restart starts server i again (after Kill), on its address and with its files, and waits
// until it accepts connections; WaitJetStream waits for its JetStream too.
func (c *Cluster) Restart(i int) error {
	if s := c.servers[i]; s != nil && s.Running() {
		return fmt.Errorf("natstest: server %s is running", c.opts[i].ServerName)
	}
	if err := c.launch(i); err != nil {
		return err
	}
	if err := c.ready(i); err != nil {
		c.Kill(i)
		return err
	}
	return nil
}

// Kill stops server i at once, and returns once it has.
func (c *Cluster) Kill(i int) {
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// WaitJetStream waits, for d at most, until the JetStream of every running server answers an
// account info request.
func (c *Cluster) WaitJetStream(d time.Duration) error {
	deadline := time.Now().Add(d)
	for i, s := range c.servers {
		if s == nil || !s.Running() {
			continue
		}
		for {
			err := accountInfo(c.URL(i))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("natstest: server %s: JetStream not ready after %v: %w", c.opts[i].ServerName, d, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// accountInfo asks the server at u for its JetStream account info.
func accountInfo(u string) error {
	nc, err := natsgo.Connect(u)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Len is the number of servers, running or not.
func (c *Cluster) Len() int { return len(c.opts) }

// URL is server i's client URL (the same whether it runs or not).
func (c *Cluster) URL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port)
}

// URLs is every server's client URL, comma-separated, in order.
func (c *Cluster) URLs() string { return c.URLsFrom(0) }

// URLsFrom is every server's client URL, comma-separated, server i's first and the others in
// order: for a client that prefers server i and fails over to the others.
func (c *Cluster) URLsFrom(i int) string {
	us := []string{c.URL(i)}
	for j := range c.opts {
		if j != i {
			us = append(us, c.URL(j))
		}
	}
	return strings.Join(us, ",")
}

// Index is the index of the server named name (as JetStream names a stream's leader), -1 for
// none.
func (c *Cluster) Index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// Shutdown stops every server and removes their files. It may be called more than once.
func (c *Cluster) Shutdown() {
	for i := range c.servers {
		c.Kill(i)
	}
	_ = os.RemoveAll(c.dir)
}

// freePorts returns n TCP ports free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
