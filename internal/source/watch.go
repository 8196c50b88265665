package source

import (
	"context"
	"net"
)

// CloseOnDone returns c, closed when ctx is done: a Run's stop then ends a read or a handshake
// in progress that the client library would otherwise wait out. Closing the returned
// connection first forgets the watch, so that a long life of reconnects does not pile watches
// up. It is a pointer, for libraries that compare connections.
func CloseOnDone(ctx context.Context, c net.Conn) net.Conn {
	return &watched{Conn: c, stop: context.AfterFunc(ctx, func() { _ = c.Close() })}
}

type watched struct {
	net.Conn
	stop func() bool
}

func (w *watched) Close() error {
	w.stop()
	return w.Conn.Close()
}
