package nats_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
)

const wait = 30 * time.Second

func newSource(t *testing.T, c nats.Config) *nats.Source {
	t.Helper()
	src, err := nats.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// The subject is the key; NATS headers are headers, several values of one name joined; a reply
// subject is the header nats_reply; a message without either has no headers.
func TestHeadersAndReply(t *testing.T) {
	s := newServer(t)
	prefix := sourcetest.UniqueName(t)
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, newSource(t, nats.Config{Conn: nats.Conn{URL: s.url}, Subjects: []string{prefix + ".*"}}), c.Emit)
	r.WaitState(t, 0, "up", wait)

	m := natsgo.NewMsg(prefix + ".a")
	m.Data = []byte(`{"n":1}`)
	m.Header.Add("Region", "eu")
	m.Header.Add("Tag", "x")
	m.Header.Add("Tag", "y")
	m.Reply = "_INBOX.answer"
	if err := s.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	spoof := natsgo.NewMsg(prefix + ".spoof")
	spoof.Header.Set(nats.ReplyHeader, "not a reply")
	if err := s.nc.PublishMsg(spoof); err != nil {
		t.Fatal(err)
	}
	if err := s.nc.Publish(prefix+".b", []byte("plain")); err != nil {
		t.Fatal(err)
	}
	if err := s.nc.Publish(prefix+".not.matched", []byte("deeper than *")); err != nil {
		t.Fatal(err)
	}
	// A sentinel: NATS delivers one connection's messages to a subscriber in the order
	// published, so once it has arrived, the unmatched subject's would have too.
	if err := s.nc.Publish(prefix+".sentinel", []byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 4, wait)
	got := c.Messages()
	if v, ok := got[1].Headers[nats.ReplyHeader]; ok {
		t.Errorf("a publisher's %s header passed for the source's: %q", nats.ReplyHeader, v)
	}
	if got[3].Key != prefix+".sentinel" {
		t.Errorf("fourth message: key %q, body %q; want the sentinel", got[3].Key, got[3].Body)
	}
	got = append(got[:1], got[2:]...)
	h := got[0].Headers
	if got[0].Key != prefix+".a" || h["Region"] != "eu" || h["Tag"] != "x, y" || h[nats.ReplyHeader] != "_INBOX.answer" || string(got[0].Body) != `{"n":1}` {
		t.Errorf("first message: key %q, headers %v, body %s", got[0].Key, h, got[0].Body)
	}
	if got[1].Key != prefix+".b" || got[1].Headers != nil || string(got[1].Body) != "plain" {
		t.Errorf("second message: key %q, headers %v, body %s", got[1].Key, got[1].Headers, got[1].Body)
	}
	if n := c.Len(); n != 4 {
		t.Errorf("%d messages, want 4: %q matched %q", n, prefix+".not.matched", prefix+".*")
	}
}

// Two sources in one queue group share the messages: each message reaches one of them.
func TestQueueGroup(t *testing.T) {
	s := newServer(t)
	prefix := sourcetest.UniqueName(t)
	cfg := nats.Config{Conn: nats.Conn{URL: s.url}, Subjects: []string{prefix + ".>"}, QueueGroup: "streamux"}
	c1, c2 := sourcetest.NewCollector(), sourcetest.NewCollector()
	r1 := sourcetest.Start(t, newSource(t, cfg), c1.Emit)
	r2 := sourcetest.Start(t, newSource(t, cfg), c2.Emit)
	r1.WaitState(t, 0, "up", wait)
	r2.WaitState(t, 0, "up", wait)
	const n = 400
	msgs := sourcetest.Numbered(0, n, false)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.publish(ctx, prefix, msgs...); err != nil {
		t.Fatal(err)
	}
	sourcetest.Eventually(t, wait, func() bool { return c1.Len()+c2.Len() >= n }, "%d messages between the two", n)
	seen := map[int]bool{}
	for _, m := range append(c1.Messages(), c2.Messages()...) {
		i := sourcetest.Number(m)
		if seen[i] {
			t.Fatalf("message %d reached both members of the group", i)
		}
		seen[i] = true
	}
	if c1.Len() == 0 || c2.Len() == 0 {
		t.Errorf("one member got everything: %d and %d", c1.Len(), c2.Len())
	}
}

// A router far behind: past pending, NATS drops, the source counts it and goes on.
func TestDropsCounted(t *testing.T) {
	s := newServer(t)
	prefix := sourcetest.UniqueName(t)
	src := newSource(t, nats.Config{Conn: nats.Conn{URL: s.url}, Subjects: []string{prefix + ".>"}, Pending: 10})
	c := sourcetest.NewCollector()
	c.SetLimit(0) // the router takes nothing
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, "up", wait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.publish(ctx, prefix, sourcetest.Numbered(0, 100, false)...); err != nil {
		t.Fatal(err)
	}
	sourcetest.Eventually(t, wait, func() bool { return src.Counters().(nats.Counters).Dropped > 0 }, "drops counted")
	c.SetLimit(-1)
	// Once the router has taken what the source held, there is room again.
	sourcetest.Eventually(t, wait, func() bool { return c.Len() >= 10 }, "the messages held")
	if err := s.publish(ctx, prefix, sourcetest.Numbered(100, 1, false)...); err != nil {
		t.Fatal(err)
	}
	sourcetest.Eventually(t, wait, func() bool {
		msgs := c.Messages()
		return len(msgs) > 0 && sourcetest.Number(msgs[len(msgs)-1]) == 100
	}, "the message after the drops")
	st := src.Counters().(nats.Counters)
	if st.Dropped+uint64(c.Len()) != 101 || st.Connects != 1 {
		t.Errorf("stats %+v with %d passed on; want dropped and passed on to make 101, one connect", st, c.Len())
	}
}

// A stop while the server has not answered the handshake returns at once, not after the
// connect timeout.
func TestStopWhileConnecting(t *testing.T) {
	sourcetest.StopWhileConnecting(t, func(addr string) source.Source {
		return newSource(t, nats.Config{Conn: nats.Conn{URL: "nats://" + addr, ConnectTimeout: time.Minute}, Subjects: []string{"x"}})
	})
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct {
		cfg  nats.Config
		want string
	}{
		{nats.Config{Subjects: []string{"a"}}, "url is required"},
		{nats.Config{Conn: nats.Conn{URL: "http://h:4222"}, Subjects: []string{"a"}}, "scheme must be nats or tls"},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222"}}, "subjects is required"},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222"}, Subjects: []string{"a..b"}}, "empty token"},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222"}, Subjects: []string{"a.>.b"}}, `">" must be the last token`},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222"}, Subjects: []string{"a.b*"}}, "wildcards are whole tokens"},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222"}, Subjects: []string{"a b"}}, "spaces"},
		{nats.Config{Conn: nats.Conn{URL: "nats://u:p@h:4222", Token: "t"}, Subjects: []string{"a"}}, "give one credential"},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222", CredsFile: "/nonexistent.creds"}, Subjects: []string{"a"}}, "creds_file"},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222"}, Subjects: []string{"a"}, Pending: -1}, "pending"},
		{nats.Config{Conn: nats.Conn{URL: "nats://h:4222"}, Subjects: []string{"a"}, QueueGroup: "a b"}, "queue_group"},
	} {
		if all := sourcetest.Problems(c.cfg.Validate()); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	good := nats.Config{Conn: nats.Conn{URL: "nats://a:4222, tls://b:4222"}, Subjects: []string{"orders.>", "ticks.*.eu", ">"}}
	if errs := good.Validate(); len(errs) != 0 {
		t.Errorf("a good config: %v", errs)
	}
}

// A nats-server of the test's own, with users and permissions, on a free port; stopped when the
// test ends.
func authServer(t *testing.T) string {
	t.Helper()
	bin := sourcetest.RequireCommand(t, "nats-server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `listen: "127.0.0.1:%d"
authorization { users = [ {user: reader, password: s3cret, permissions: {subscribe: ["allowed.>"]}} ] }
`, port), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	sourcetest.Eventually(t, wait, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, "nats-server on %s", addr)
	return addr
}

// Refused credentials and a subscription the server's permissions refuse are permanent (state
// failed), and the source never says up first.
func TestRefusals(t *testing.T) {
	addr := authServer(t)
	for _, c := range []struct {
		name, url, subject, want string
	}{
		{"wrong password", "nats://reader:nope@" + addr, "allowed.x", "authorization violation"},
		{"subject not permitted", "nats://reader:s3cret@" + addr, "forbidden.>", "permissions violation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sourcetest.Start(t, newSource(t, nats.Config{Conn: nats.Conn{URL: c.url}, Subjects: []string{c.subject}}), sourcetest.NewCollector().Emit)
			i := r.WaitState(t, 0, "failed", wait)
			if err := r.Changes()[i].Err; err == nil || !strings.Contains(strings.ToLower(err.Error()), c.want) {
				t.Errorf("failed because of %v, want %q", err, c.want)
			}
			for _, ch := range r.Changes() {
				if ch.State == "up" {
					t.Errorf("up before failing")
				}
			}
		})
	}
	// The permitted subject works.
	src := newSource(t, nats.Config{Conn: nats.Conn{URL: "nats://reader:s3cret@" + addr}, Subjects: []string{"allowed.>"}})
	sourcetest.Start(t, src, sourcetest.NewCollector().Emit).WaitState(t, 0, "up", wait)
}
