package ws

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/gobwas/ws"

	"github.com/streamux/streamux/internal/poison"
)

// read reads the client's frames, on Serve's goroutine, until an error, a close frame or a
// frame too large, and returns why the stream should end. It hands pings to the writer to
// answer, and cuts a peer silent for two heartbeats and a write timeout (it did not answer our
// pings). Besides c.rd and c.nc's read side, which are its own, it touches only c.sched (under
// c.mu) and c.linger.
func (c *Conn) read() error {
	idle := 2*c.opt.Heartbeat + c.opt.WriteTimeout
	r := c.rd
	var ctl [125]byte
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		if l := c.linger.Load(); l != 0 {
			// The close frame is sent: wait only so long for the client's. (Loaded after
			// setting the deadline, so that finish's own setting cannot be overwritten.)
			_ = c.nc.SetReadDeadline(time.Unix(0, l))
		}
		h, err := ws.ReadHeader(r)
		if err == nil {
			if err = ws.CheckHeader(h, ws.StateServerSide); err != nil {
				c.setClose(ws.StatusProtocolError, "")
			}
		}
		if err != nil {
			return fmt.Errorf("ws: read: %w", err)
		}
		if h.OpCode.IsControl() {
			p := ctl[:h.Length]
			if _, err := io.ReadFull(r, p); err != nil {
				return fmt.Errorf("ws: read: %w", err)
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpPing:
				// A copy: ctl is read into again by the next frame, before the
				// writer may have sent this pong.
				c.mu.Lock()
				c.sched.pong, c.sched.pongDue = bytes.Clone(p), true
				c.mu.Unlock()
				c.schedule()
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				switch {
				case len(p) == 0:
					code = ws.StatusNormalClosure // no code: echo a plain close
				case len(p) == 1 || ws.CheckCloseFrameData(code, reason) != nil:
					code = ws.StatusProtocolError // a code no endpoint may send, or a bad reason
				}
				c.setClose(code, "")
				return errPeerClosed
			}
			poison.Bytes(ctl[:])
			continue
		}
		// Clients have nothing to tell a stream; their data frames are read and dropped.
		if h.Length > c.opt.MaxClientFrame {
			c.setClose(ws.StatusMessageTooBig, "frame too large")
			return fmt.Errorf("ws: client frame over %d bytes", c.opt.MaxClientFrame)
		}
		if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
			return fmt.Errorf("ws: read: %w", err)
		}
	}
}

// setClose chooses the close frame the writer sends: the reader's choice wins over the
// output's reason.
func (c *Conn) setClose(code ws.StatusCode, reason string) {
	c.mu.Lock()
	c.sched.closeOut = &closeFrame{code, reason}
	c.mu.Unlock()
}
