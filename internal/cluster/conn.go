package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// maxPendingAcks bounds the publishes awaiting JetStream's acks on one connection, all
// Appends together; an Append past it waits (nats.go's stall) rather than growing the queue.
const maxPendingAcks = 16384

// Conn is a node's connection to the cluster's JetStream: one NATS connection shared by
// every Log, Reader and Lease made from it. nats.go reconnects it for as long as it lives,
// holding what is published meanwhile; an Append that cannot be stored is retried until its
// context ends.
//
// A Conn is safe for concurrent use. Close it last, after every Reader and Lease made from
// it has stopped.
type Conn struct {
	cfg Config // with defaults applied
	nc  *natsgo.Conn
	js  jetstream.JetStream

	idPrefix string        // begins the ids Append gives to entries without one
	idSeq    atomic.Uint64 // numbers them
}

// Connect validates cfg, applies its defaults (listen names the node when cfg.Node is
// empty) and connects. It returns once a server has answered, or with the first server's
// error when none did before ctx ended or the connect timeout passed.
func Connect(ctx context.Context, cfg Config, listen string) (*Conn, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("cluster: %w", errors.Join(errs...))
	}
	d := cfg.WithDefaults(listen)
	opts := []natsgo.Option{
		natsgo.Name(d.NATS.ConnectionName),
		natsgo.Timeout(d.NATS.ConnectTimeout),
		natsgo.MaxReconnects(-1),
		natsgo.RetryOnFailedConnect(false),
	}
	tlsc, err := d.NATS.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("cluster: nats.%w", err)
	}
	if tlsc != nil {
		opts = append(opts, natsgo.Secure(tlsc))
	}
	switch {
	case d.NATS.Creds != "":
		opts = append(opts, natsgo.UserCredentials(d.NATS.Creds))
	case d.NATS.Token != "":
		opts = append(opts, natsgo.Token(d.NATS.Token))
	case d.NATS.User != "":
		opts = append(opts, natsgo.UserInfo(d.NATS.User, d.NATS.Password))
	}
	type result struct {
		nc  *natsgo.Conn
		err error
	}
	done := make(chan result, 1)
	// Connect dials each URL in turn and takes no context; this goroutine ends when it
	// returns (bounded by the connect timeout per server). Connect waits for it, or, if ctx
	// ends first, leaves it to close the connection it made.
	go func() {
		nc, err := natsgo.Connect(d.NATS.URL, opts...)
		done <- result{nc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// Nobody waits for this one: it ends when the dial above does (within the connect
		// timeout per server), closing the connection if one was made.
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("cluster: connect to %s: %w", redactURLs(d.NATS.URL), ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", redactURLs(d.NATS.URL), r.err)
	}
	js, err := jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(maxPendingAcks), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		r.nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return &Conn{cfg: d, nc: r.nc, js: js, idPrefix: "g" + nuid.Next() + "."}, nil
}

// Config is the configuration the Conn runs with, defaults applied.
func (c *Conn) Config() Config { return c.cfg }

// Node is this node's name.
func (c *Conn) Node() string { return c.cfg.Node }

// NATS is the underlying connection, for tests and for what this package does not cover.
func (c *Conn) NATS() *natsgo.Conn { return c.nc }

// Close closes the connection. Readers still reading end with an error.
func (c *Conn) Close() { c.nc.Close() }

// newID is a message id that no other Append of any node gives: a prefix random to this
// Conn, then a count.
func (c *Conn) newID() string {
	return c.idPrefix + strconv.FormatUint(c.idSeq.Add(1), 36)
}
