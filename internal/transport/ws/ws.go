// Package ws serves a subscription over WebSocket: one event per text frame, pings from the
// server, and close codes that say why a stream ended (4008 slow consumer, 1001 shutdown).
//
// Each connection has two goroutines. The HTTP request goroutine is the only writer: it joins
// every queued event's pre-encoded frame into one writev system call, and writes pongs and close
// frames when the reader asks for them. A reader goroutine, started and waited for by Serve,
// reads the client's frames: it answers pings through the writer, notices a close, and cuts a
// peer that has been silent for two heartbeats (it did not answer our pings).
package ws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// Close codes beyond RFC 6455's, as API.md lists them.
const (
	CloseSlowConsumer ws.StatusCode = 4008
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

// Upgrade completes the handshake. On failure the response has been written.
func Upgrade(w http.ResponseWriter, r *http.Request, opt transport.Options) (net.Conn, *bufio.Reader, error) {
	u := ws.HTTPUpgrader{Timeout: opt.WithDefaults().WriteTimeout}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		return nil, nil, fmt.Errorf("ws: upgrade: %w", err)
	}
	return conn, rw.Reader, nil
}

// Serve streams out over conn, which Upgrade returned, until the output ends, the client closes
// or goes silent, or a write fails; it closes conn and returns why.
func Serve(conn net.Conn, br *bufio.Reader, out *output.Output, backlog []*stream.Event, opt transport.Options) error {
	opt = opt.WithDefaults()
	c := &wsConn{conn: conn, opt: opt, wake: make(chan struct{}, 1)}

	// Keep only what the handshake's reader already buffered, so that an idle connection does
	// not hold net/http's 4 KiB read buffer.
	var rd io.Reader = conn
	if n := br.Buffered(); n > 0 {
		pending, _ := br.Peek(n)
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), conn)
	}
	readerDone := make(chan struct{})
	defer func() {
		// Closing the connection ends the reader, whatever ended the writer (a panic too).
		conn.Close()
		<-readerDone
	}()
	go func() { // the reader; Serve waits for it below
		defer close(readerDone)
		defer func() {
			// A bug in the reader ends this connection, not the process.
			if p := recover(); p != nil {
				c.fail(fmt.Errorf("panic: %v", p))
			}
		}()
		c.read(rd)
	}()

	// The connection is hijacked, so no request context tells of the client leaving: the
	// reader does, through Wake.
	err := out.Pump(context.Background(), c, backlog, output.PumpOptions{
		Heartbeat: opt.Heartbeat, HeartbeatBusy: true, MaxBatch: opt.MaxBatch, Wake: c.wake, OnWake: c.onWake, Written: opt.Written,
	})
	c.finish(err)
	return err
}

type wsConn struct {
	conn net.Conn
	opt  transport.Options
	wake chan struct{}
	bufs [][]byte
	out  net.Buffers // what is left to write of bufs; a field, so that writing allocates nothing

	mu       sync.Mutex // guards the fields below, shared with the reader
	pong     []byte     // payload of a ping to answer
	pongDue  bool
	closeIn  *closeFrame // the client's close frame
	readErr  error
	tooLarge bool
}

type closeFrame struct {
	code   ws.StatusCode
	reason string
}

var errPeerClosed = errors.New("ws: client closed the connection")

// Write sends every event's frame in one writev.
func (c *wsConn) Write(evs []*stream.Event) error {
	c.bufs = c.bufs[:0]
	for _, ev := range evs {
		c.bufs = append(c.bufs, ev.WSFrame())
	}
	c.out = c.bufs
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
	_, err := c.out.WriteTo(c.conn)
	clear(c.bufs)
	return err
}

// Heartbeat sends a ping; the reader cuts the connection if nothing comes back.
func (c *wsConn) Heartbeat() error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
	_, err := c.conn.Write(ws.CompiledPing)
	return err
}

// onWake does what the reader asked for.
func (c *wsConn) onWake() error {
	c.mu.Lock()
	pongDue, pong, in, rerr, tooLarge := c.pongDue, c.pong, c.closeIn, c.readErr, c.tooLarge
	c.pongDue = false
	c.mu.Unlock()
	if pongDue {
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
		if err := ws.WriteFrame(c.conn, ws.NewPongFrame(pong)); err != nil {
			return err
		}
	}
	switch {
	case tooLarge:
		c.writeClose(ws.StatusMessageTooBig, "frame too large")
		return fmt.Errorf("ws: client frame over %d bytes", c.opt.MaxClientFrame)
	case in != nil:
		code := in.code
		if code.Empty() {
			code = ws.StatusNormalClosure
		}
		c.writeClose(code, "")
		return errPeerClosed
	case rerr != nil:
		return rerr
	}
	return nil
}

// finish writes the close frame that says why the stream ended, where there is one to write.
func (c *wsConn) finish(err error) {
	switch {
	case errors.Is(err, output.ErrSlowConsumer):
		c.writeClose(CloseSlowConsumer, "slow consumer")
	case errors.Is(err, output.ErrShutdown):
		c.writeClose(ws.StatusGoingAway, "server shutting down")
	case errors.Is(err, output.ErrKicked):
		c.writeClose(ws.StatusPolicyViolation, "ended by an administrator")
	case errors.Is(err, output.ErrExpired):
		c.writeClose(ws.StatusPolicyViolation, "credential expired")
	}
}

func (c *wsConn) writeClose(code ws.StatusCode, reason string) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
	_ = ws.WriteFrame(c.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason)))
}

func (c *wsConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// read reads client frames until an error or a close frame.
func (c *wsConn) read(r io.Reader) {
	idle := 2*c.opt.Heartbeat + c.opt.WriteTimeout
	var ctl [125]byte
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(idle))
		h, err := ws.ReadHeader(r)
		if err == nil {
			err = ws.CheckHeader(h, ws.StateServerSide)
		}
		if err != nil {
			c.fail(err)
			return
		}
		if h.OpCode.IsControl() {
			p := ctl[:h.Length]
			if _, err := io.ReadFull(r, p); err != nil {
				c.fail(err)
				return
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpPing:
				c.mu.Lock()
				c.pong, c.pongDue = bytes.Clone(p), true
				c.mu.Unlock()
				c.signal()
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				c.mu.Lock()
				c.closeIn = &closeFrame{code: code, reason: reason}
				c.mu.Unlock()
				c.signal()
				return
			}
			continue
		}
		// Clients have nothing to tell a stream; their data frames are read and dropped.
		if h.Length > c.opt.MaxClientFrame {
			c.mu.Lock()
			c.tooLarge = true
			c.mu.Unlock()
			c.signal()
			return
		}
		if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *wsConn) fail(err error) {
	c.mu.Lock()
	if c.readErr == nil {
		c.readErr = fmt.Errorf("ws: read: %w", err)
	}
	c.mu.Unlock()
	c.signal()
}
