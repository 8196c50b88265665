// Package rawconn gives TCP connections reads and writes that do not tell the Go scheduler they
// might block.
//
// A Go socket never blocks: the runtime made it non-blocking and waits for it in its poller. Yet
// net's reads and writes enter the scheduler's system-call state, and each such entry, when the
// process was idle, wakes the runtime's monitor thread (sysmon) from its deep sleep; woken so, it
// polls every 20 µs for the next millisecond (golang/go#18236). A server fed by many small reads
// (an ingest stream, a broker's frames) or writing many small ones (SSE, NDJSON) then pays a
// thread wake-up and tens of short sleeps per burst of work; on a virtual machine, where a
// thread switch is dear, that was a seventh of streamux's CPU at 40,000 deliveries a second.
//
// Wrap's connections read and write with raw system calls through the socket's syscall.RawConn,
// which waits with the poller as net's own calls do, deadlines included. A write of more than 64
// KiB goes through net's own call: a raw call holds its P while the kernel copies, and no
// stop-the-world can take it meanwhile. Everything else (the deadlines, CloseWrite, SyscallConn,
// sendfile) is the *net.TCPConn's own. Built with -race, the raw calls tell the race detector what
// net's calls tell it. Off Linux, Wrap returns the connection as it is.
package rawconn

import "net"

// Listener wraps a listener: its TCP connections are wrapped by Wrap.
type Listener struct {
	net.Listener
}

// Accept waits for the next connection and wraps it.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
