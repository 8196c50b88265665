//go:build race

package rawconn

import (
	"runtime"
	"syscall"
	"unsafe"
)

// The race detector learns of the order that a socket makes between a write and the read that
// gets its bytes from the annotations of package syscall's Read and Write: every write releases
// one variable that every read acquires. A raw call has none, so the detector would report races
// that the socket's order rules out (and miss those on the buffers). These give the raw calls
// the same annotations, through syscall's own: a read or write of no bytes does nothing to a
// socket but what the race detector sees.

// raceRead tells the race detector of a read of p from fd.
func raceRead(fd uintptr, p []byte) {
	if len(p) > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&p[0]), len(p))
	}
	_, _ = syscall.Read(int(fd), nil)
}

// RaceWritev tells the race detector of a raw writev of bufs to fd, before it, as package
// syscall's own calls do; built without -race, it does nothing.
func RaceWritev(fd uintptr, bufs [][]byte) {
	_, _ = syscall.Write(int(fd), nil)
	for _, b := range bufs {
		if len(b) > 0 {
			runtime.RaceReadRange(unsafe.Pointer(&b[0]), len(b))
		}
	}
}
