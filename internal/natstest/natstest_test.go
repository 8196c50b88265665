package natstest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/natstest"
)

// TestMain checks that no test leaves a goroutine behind: a Cluster's servers are all gone once
// it is shut down.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// jetStream connects to urls, closing the connection when the test ends.
func jetStream(t *testing.T, urls string) jetstream.JetStream {
	t.Helper()
	nc, err := natsgo.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// A lone server answers JetStream at its URL, and Shutdown may be called again.
func TestLoneServer(t *testing.T) {
	c, err := natstest.New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if c.Len() != 1 || c.URLs() != c.URL(0) || c.URLsFrom(0) != c.URL(0) {
		t.Fatalf("len %d, URLs %q, URL %q", c.Len(), c.URLs(), c.URL(0))
	}
	if c.Index("s1") != 0 || c.Index("s2") != -1 {
		t.Fatalf("index s1 %d, s2 %d", c.Index("s1"), c.Index("s2"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := jetStream(t, c.URL(0))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LONE", Subjects: []string{"lone"}}); err != nil {
		t.Fatal(err)
	}
	c.Shutdown()
	c.Shutdown()
}

// Three servers form one cluster: a stream of three replicas survives its leader's kill, and
// the killed server starts again and serves the stream.
func TestClusterKillRestart(t *testing.T) {
	c := natstest.Start(t, 3)
	if want := strings.Join([]string{c.URL(1), c.URL(0), c.URL(2)}, ","); c.URLsFrom(1) != want {
		t.Fatalf("URLsFrom(1) %q, want %q", c.URLsFrom(1), want)
	}
	if c.URLs() != c.URLsFrom(0) {
		t.Fatalf("URLs %q", c.URLs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js := jetStream(t, c.URLs())
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KILLED", Subjects: []string{"killed"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "killed", []byte("one")); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Index(info.Cluster.Leader)
	if leader < 0 {
		t.Fatalf("leader %q", info.Cluster.Leader)
	}
	c.Kill(leader)
	if err := c.Restart((leader + 1) % 3); err == nil {
		t.Fatal("restarted a running server")
	}
	// The survivors elect another leader and take the next message.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := js.Publish(ctx, "killed", []byte("two"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after the kill: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitJetStream(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Through the restarted server, the stream has both messages.
	direct := jetStream(t, c.URL(leader))
	deadline = time.Now().Add(30 * time.Second)
	for {
		s, err := direct.Stream(ctx, "KILLED")
		if err == nil {
			if info, err := s.Info(ctx); err == nil && info.State.Msgs == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
