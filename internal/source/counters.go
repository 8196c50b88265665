package source

import "sync/atomic"

// Tally is what every adapter counts, live: the messages it passed on, their bodies' bytes, and
// its connections. An adapter embeds one and reads it with Counters; it is safe for concurrent
// use. (Throughout streamux a live count is a tally, and what is read from it Counters.)
type Tally struct {
	messages, bytes, connects atomic.Uint64
}

// Passed counts one message passed on, with a body of n bytes.
func (t *Tally) Passed(n int) {
	t.messages.Add(1)
	t.bytes.Add(uint64(n))
}

// Connected counts one connection that got as far as reading.
func (t *Tally) Connected() { t.connects.Add(1) }

// Counters returns the tally's values now.
func (t *Tally) Counters() Counters {
	return Counters{Messages: t.messages.Load(), Bytes: t.bytes.Load(), Connects: t.connects.Load()}
}

// Counters are a Tally's values at one moment, as GET /v1/sources shows them under adapter.
type Counters struct {
	// Messages counts the messages passed on; Bytes their bodies' total size.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// Connects counts the connections that got as far as reading.
	Connects uint64 `json:"connects"`
}

// Counted is an adapter that counts what only it sees (connections, redeliveries, what its
// broker dropped): GET /v1/sources shows its Counters under "adapter". An optional interface:
// the supervisor asks every adapter for it.
type Counted interface {
	// Counters returns the adapter's counters now, as a value that encodes to JSON (the
	// adapter package's Counters type). It is called from any goroutine.
	Counters() any
}
