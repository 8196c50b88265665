package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/sourcetest"
)

// natsURLEnv names the environment variable that points the tests at another NATS server
// (with JetStream).
const natsURLEnv = "STREAMUX_TEST_NATS_URL"

// requireNATS returns the JetStream server to test against ($STREAMUX_TEST_NATS_URL, or the
// nats-server 2.9 on 127.0.0.1:4222 that every development and CI machine runs), skipping
// the test when none answers, or failing if CI=true.
func requireNATS(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(natsURLEnv)
	if raw == "" {
		raw = "nats://127.0.0.1:4222"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s is not a NATS URL", natsURLEnv)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":4222"
	}
	sourcetest.RequireServer(t, "NATS", addr)
	return raw
}

// testPrefix is a stream prefix no other test (of this run or another) uses.
func testPrefix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "SXT" + hex.EncodeToString(b[:]) + "_"
}

// connect connects a node to urls with a fresh prefix unless cfg names one, and removes the
// prefix's streams and bucket when the test ends.
func connect(t testing.TB, urls string, cfg cluster.Config) *cluster.Conn {
	t.Helper()
	cfg.NATS.URL = urls
	if cfg.StreamPrefix == "" {
		cfg.StreamPrefix = testPrefix()
	}
	if cfg.Node == "" {
		cfg.Node = "node-" + t.Name()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Connect(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cleanup(urls, c.Config().StreamPrefix)
		c.Close()
	})
	return c
}

// cleanup deletes every stream whose name begins with prefix (the logs and the lease
// bucket's).
func cleanup(urls, prefix string) {
	nc, err := natsgo.Connect(urls)
	if err != nil {
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var del []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) || strings.HasPrefix(n, "KV_"+prefix) {
			del = append(del, n)
		}
	}
	for _, n := range del {
		_ = js.DeleteStream(ctx, n)
	}
}

// testCluster is a cluster of nats-servers in this process, on loopback ports of their own,
// storing in a temporary directory.
type testCluster struct {
	opts    []*server.Options
	servers []*server.Server
	dir     string
}

// freePorts returns n TCP ports free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
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

// startCluster starts n clustered JetStream servers (n = 1: a lone server, as streamux
// would embed one) and waits until JetStream answers.
func startCluster(n int) (*testCluster, error) {
	dir, err := os.MkdirTemp("", "streamux-cluster-test-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	tc := &testCluster{dir: dir}
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
			StoreDir:   fmt.Sprintf("%s/s%d", dir, i+1),
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			o.Cluster = server.ClusterOpts{Name: "streamux-test", Host: "127.0.0.1", Port: ports[n+i]}
			o.Routes = routes
		}
		tc.opts = append(tc.opts, o)
	}
	for i := range n {
		if err := tc.start(i); err != nil {
			tc.shutdown()
			return nil, err
		}
	}
	if err := tc.waitJetStream(30 * time.Second); err != nil {
		tc.shutdown()
		return nil, err
	}
	return tc, nil
}

// start starts (or starts again) server i.
func (tc *testCluster) start(i int) error {
	s, err := server.NewServer(tc.opts[i])
	if err != nil {
		return err
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("server %d not ready", i)
	}
	if i < len(tc.servers) {
		tc.servers[i] = s
	} else {
		tc.servers = append(tc.servers, s)
	}
	return nil
}

// waitJetStream waits until every live server's JetStream answers an account info request.
func (tc *testCluster) waitJetStream(d time.Duration) error {
	deadline := time.Now().Add(d)
	for i, s := range tc.servers {
		if s == nil || !s.Running() {
			continue
		}
		for {
			err := func() error {
				nc, err := natsgo.Connect(s.ClientURL())
				if err != nil {
					return err
				}
				defer nc.Close()
				js, _ := jetstream.New(nc)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err = js.AccountInfo(ctx)
				return err
			}()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("server %d: JetStream not ready: %w", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// URLs is every server's client URL, comma-separated.
func (tc *testCluster) URLs() string {
	var us []string
	for _, o := range tc.opts {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(us, ",")
}

// URL is server i's client URL.
func (tc *testCluster) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", tc.opts[i].Port) }

// kill stops server i at once.
func (tc *testCluster) kill(i int) {
	tc.servers[i].Shutdown()
	tc.servers[i].WaitForShutdown()
}

// index is the index of the server named name, -1 for none.
func (tc *testCluster) index(name string) int {
	for i, o := range tc.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

func (tc *testCluster) shutdown() {
	for _, s := range tc.servers {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	os.RemoveAll(tc.dir)
}

// shared is the three-server cluster that the tests that do not kill a server share,
// started by the first that asks and shut down by TestMain.
var shared struct {
	once sync.Once
	tc   *testCluster
	err  error
}

func sharedCluster(t testing.TB) *testCluster {
	t.Helper()
	shared.once.Do(func() { shared.tc, shared.err = startCluster(3) })
	if shared.err != nil {
		t.Fatalf("start the in-process cluster: %v", shared.err)
	}
	return shared.tc
}

// eventually polls cond every 10ms until it holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
