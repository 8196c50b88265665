// Package ws serves a subscription over WebSocket: one event per text frame (or, with batch,
// the events of one write joined in one frame, one a line), pings from the server, and close
// codes that say why a stream ended (4008 slow consumer, 4009 predicate too costly, 1001
// shutdown or source removed by a reload, 1008 ended by an administrator, credential expired
// or revoked).
//
// A stream is read by the goroutine that calls Serve, and written by the Hub: a few shared
// goroutines (shards) join every queued event's pre-encoded frame into one writev per
// connection without waiting on any socket, and a connection that cannot keep up gets a writer
// goroutine of its own until it has caught up. Exactly one goroutine writes a connection at any
// time; its state says which (writer.go).
//
// Goroutines:
//
//	goroutine          started by                           stops when                                      waited for by
//	a reader           the caller of Conn.Serve             the client closes, goes silent or errs, or      the caller (Serve returns
//	                                                        the connection is closed (the writer's end,     after the writer ended and
//	                                                        Hub.Cut, Serve's ctx)                           its goroutines returned)
//	a shard            Hub.join, with the first connection  Hub.Close                                       Hub.Close
//	a connection's     Serve (its backlog), a shard (a      it has caught up (the connection goes idle),    Serve (Conn.writers)
//	own writer         full socket, a TLS connection, an    or the stream has ended (it writes the close
//	(drain)            ending stream, a stopped hub)        frame and ends the writing)
//	Serve's cut        the runtime, when Serve's ctx is     once it has closed the output and the           Serve
//	                   done                                 connection
//
// Locks: Hub.mu, shard.mu and Conn.mu; locksordering.txt says which may be held together.
package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gobwas/ws"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/transport"
)

// Close codes beyond RFC 6455's: API.md's, and streamux's own.
const (
	CloseSlowConsumer ws.StatusCode = 4008
	// ClosePredicateTooCostly: one evaluation of the stream's predicate went over its cost
	// limit. Reconnecting with the same predicate is cut again by the same kind of message.
	ClosePredicateTooCostly ws.StatusCode = 4009
)

// IsUpgrade reports whether r asks for a WebSocket.
func IsUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHas(r.Header, "Connection", "upgrade") && headerHas(r.Header, "Upgrade", "websocket")
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Conn is one upgraded WebSocket connection, ready to stream: the reader's, the writers' and
// the shard's shared record of it. Each field says what guards it.
type Conn struct {
	// Set by Upgrade and Serve before the connection is shared (before Serve's SetNotify
	// and its first writer), read-only after.
	hub   *Hub
	nc    net.Conn
	rd    io.Reader       // the client's frames: what the handshake's reader buffered, then nc
	raw   syscall.RawConn // nil when the socket is not a plain one (TLS): it is then always drained
	out   *output.Output
	opt   transport.Options
	shard *shard
	ended chan struct{} // closed by end, once: the writing is over for good

	// writers are the connection's own writer goroutines (drain), started by whoever holds
	// the writing as it hands it over, so every Add comes before ended is closed; Serve waits
	// for them after ended.
	writers sync.WaitGroup

	// linger is set by the writer once the close frame is sent, and read by the reader before
	// each frame: until when the reader waits for the client's own close (Unix ns; 0: not yet).
	linger atomic.Int64

	mu    sync.Mutex // guards sched; never held with another lock (locksordering.txt)
	sched sched

	// w is owned by the goroutine that holds the writing (state writing or draining): no
	// other goroutine touches it, and it needs no lock.
	w writer
}

// Upgrade completes the handshake of r into a connection for Serve. On failure the response
// has been written.
func (h *Hub) Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	u := ws.HTTPUpgrader{Timeout: h.writeTimeout}
	nc, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		return nil, fmt.Errorf("ws: upgrade: %w", err)
	}
	// Keep only what the handshake's reader already buffered, so that an idle connection does
	// not hold net/http's 4 KiB read buffer.
	var rd io.Reader = nc
	if n := rw.Reader.Buffered(); n > 0 {
		pending, _ := rw.Reader.Peek(n)
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), nc)
	}
	return &Conn{hub: h, nc: nc, rd: rd}, nil
}

var _ transport.Stream = (*Conn)(nil)

// Serve streams s over the connection until the output ends, the client closes or goes
// silent, a write fails, or ctx is done (the client is gone: the connection is closed at
// once); it closes the connection and returns why. The calling goroutine reads the client's
// frames; the hub writes. Serve returns once nothing of the connection runs any more.
func (c *Conn) Serve(ctx context.Context, s *transport.Session) error {
	c.out = s.Out
	c.opt = s.Options.WithDefaults()
	c.opt.MaxBatch = min(c.opt.MaxBatch, maxFrames)
	c.ended = make(chan struct{})
	// The backlog is written first, by a writer goroutine of the connection's own (started
	// below); the hub takes over once it and what was queued meanwhile are written.
	c.w.backlog = s.Backlog
	c.sched.state = draining
	// A TLS connection is no syscall.Conn: its writes all go through drain.
	if sc, ok := c.nc.(syscall.Conn); ok && fastWrites {
		c.raw, _ = sc.SyscallConn()
	}
	if err := c.hub.join(c); err != nil {
		c.nc.Close()
		return err
	}
	defer c.shard.leave(c)
	if ctx.Done() != nil {
		cut := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(cut)
			c.out.Close(output.ErrClientGone)
			c.nc.Close()
		})
		defer func() {
			if !stop() {
				<-cut // it ran, or runs: wait for it
			}
		}()
	}

	c.writers.Go(c.drain) // goes idle when done, or ends the writing by closing c.ended
	c.out.SetNotify(c.schedule)

	reason := c.read()
	c.out.Close(reason) // the first reason wins: the output may have ended first
	<-c.ended
	c.writers.Wait()
	c.nc.Close()
	return c.out.Err()
}

// closeFor is the close frame for why an output ended, or nil when the client's side ended it.
func closeFor(reason error) *closeFrame {
	switch {
	case errors.Is(reason, output.ErrSlowConsumer):
		return &closeFrame{CloseSlowConsumer, "slow consumer"}
	case errors.Is(reason, output.ErrShutdown):
		return &closeFrame{ws.StatusGoingAway, "server shutting down"}
	case errors.Is(reason, output.ErrKicked):
		return &closeFrame{ws.StatusPolicyViolation, "ended by an administrator"}
	case errors.Is(reason, output.ErrExpired):
		return &closeFrame{ws.StatusPolicyViolation, "credential expired"}
	case errors.Is(reason, output.ErrRevoked):
		return &closeFrame{ws.StatusPolicyViolation, "credential revoked"}
	case errors.Is(reason, output.ErrSourceRemoved):
		return &closeFrame{ws.StatusGoingAway, "source removed"}
	case errors.Is(reason, output.ErrTooCostly):
		return &closeFrame{ClosePredicateTooCostly, "predicate too costly"}
	case errors.Is(reason, output.ErrReplay):
		return &closeFrame{ws.StatusInternalServerError, "replay from the log failed; resume again"}
	}
	return nil
}

type closeFrame struct {
	code   ws.StatusCode
	reason string
}
