package httpapi

import (
	"context"
	"net/http"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/transport/ws"
)

// serveWebSocket upgrades r and hands the session to a goroutine of its own, which serves and
// closes it; the handler returns at once, so that an open WebSocket holds neither net/http's
// buffers nor the request's stack. Close waits for those goroutines (Server.streams).
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, ss *session) {
	if !s.trackWebSocket() {
		s.reject(w, errShuttingDown())
		ss.close(output.ErrShutdown)
		return
	}
	var conn *ws.Conn
	err := ss.guard(func() (err error) {
		conn, err = s.hub.Upgrade(w, r)
		return err
	})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", ss.remote, "err", err)
		ss.close(err)
		s.streams.Done()
		return
	}
	// The connection is read by its stream's goroutine and written by the hub: the request's
	// context, which ends with this handler, carries only its values over.
	ctx := context.WithoutCancel(r.Context())
	go func() { // waited for by Close, through s.streams
		defer s.streams.Done()
		ss.close(ss.serve(ctx, conn))
	}()
}

// trackWebSocket counts a WebSocket stream that is about to be upgraded in s.streams, so that
// Close waits for it, unless Close has begun.
func (s *Server) trackWebSocket() bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closing {
		return false
	}
	s.streams.Add(1)
	return true
}
