package amqp_test

import (
	"crypto/x509"
	"fmt"
	"strings"
	"syscall"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/source/amqp"
)

// What connecting again cannot cure is told apart from what it can, for the source and the sink
// alike.
func TestIncurable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&amqp091.Error{Code: amqp091.AccessRefused, Reason: "ACCESS_REFUSED"}, true},
		{fmt.Errorf("consume: %w", &amqp091.Error{Code: amqp091.NotFound}), true},
		{fmt.Errorf("connect: %w", amqp091.ErrSASL), true},
		{fmt.Errorf("connect: %w", x509.UnknownAuthorityError{}), true},
		{&amqp091.Error{Code: amqp091.ConnectionForced, Reason: "shutdown"}, false},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), false},
		{amqp091.ErrClosed, false},
	} {
		if got := amqp.Incurable(c.err); got != c.want {
			t.Errorf("Incurable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A URL that does not parse is told without repeating it: it may hold a password.
func TestCheckURLKeepsThePassword(t *testing.T) {
	if s, err := amqp.CheckURL("amqps://guest:guest@127.0.0.1:5671/"); err != nil || s != "amqps" {
		t.Fatalf("a good URL: %q, %v", s, err)
	}
	_, err := amqp.CheckURL("amqp://user:s3cret@host:notaport/")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a bad URL: %v; want an error without the password", err)
	}
}
