//go:build !race

package rawconn

func raceRead(uintptr, []byte) {}

// RaceWritev tells the race detector of a raw writev of bufs to fd, before it, as package
// syscall's own calls do; built without -race, it does nothing.
func RaceWritev(uintptr, [][]byte) {}
