package sourcetest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// AMQPURLEnv names the environment variable that points the tests at another RabbitMQ.
const AMQPURLEnv = "STREAMUX_TEST_AMQP_URL"

// DefaultAMQPURL is the RabbitMQ the tests use when AMQPURLEnv is unset: the one every
// development and CI machine runs.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// RequireAMQP returns the URL of the RabbitMQ to test against ($STREAMUX_TEST_AMQP_URL, or
// DefaultAMQPURL). When nothing answers there, the test is skipped, or fails if CI=true.
func RequireAMQP(t testing.TB) string {
	t.Helper()
	u := os.Getenv(AMQPURLEnv)
	if u == "" {
		u = DefaultAMQPURL
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		t.Fatalf("sourcetest: %s is not an AMQP URL", AMQPURLEnv)
	}
	host := pu.Host
	if pu.Port() == "" {
		port := "5672"
		if pu.Scheme == "amqps" {
			port = "5671"
		}
		host = net.JoinHostPort(pu.Hostname(), port)
	}
	RequireServer(t, "RabbitMQ", host)
	return u
}

// RequireServer checks that a server accepts TCP connections at addr. If none does, the test is
// skipped with a message naming what is missing, or fails if the environment variable CI is
// "true", where every server must be present.
func RequireServer(t testing.TB, what, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	missing(t, fmt.Sprintf("%s is not reachable at %s: %v", what, addr, err))
}

// RequireCommand returns the path of the command name (e.g. rabbitmqctl), skipping the test if
// it is not on PATH, or failing if CI=true.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("%s is not on PATH", name))
	}
	return p
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so the server is required)", msg)
	}
	t.Skipf("%s; skipping (with CI=true this fails)", msg)
}

// UniqueName returns a name made of the test's that no other test (of this or another package,
// or another run) uses: for an exchange, a queue, a subject prefix. It is dot-separated, so
// that it is one prefix of NATS tokens too.
func UniqueName(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return "streamux-test." + strings.Trim(name, "-") + "." + hex.EncodeToString(b[:])
}
