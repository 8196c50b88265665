package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/natstest"
	"github.com/streamux/streamux/internal/sourcetest"
)

// connect connects a node to urls with a fresh prefix unless cfg names one, and removes the
// prefix's streams and bucket when the test ends.
func connect(t testing.TB, urls string, cfg cluster.Config) *cluster.Conn {
	t.Helper()
	cfg.NATS.URL = urls
	if cfg.StreamPrefix == "" {
		cfg.StreamPrefix = sourcetest.StreamPrefix()
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
		sourcetest.DeleteStreams(urls, c.Config().StreamPrefix)
		c.Close()
	})
	return c
}

// shared is the three-server cluster that the tests that do not kill a server share,
// started by the first that asks and shut down by TestMain.
var shared struct {
	once sync.Once
	tc   *natstest.Cluster
	err  error
}

func sharedCluster(t testing.TB) *natstest.Cluster {
	t.Helper()
	shared.once.Do(func() { shared.tc, shared.err = natstest.New(3) })
	if shared.err != nil {
		t.Fatalf("start the in-process cluster: %v", shared.err)
	}
	return shared.tc
}
