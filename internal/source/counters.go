package source

import "sync/atomic"

// Counters are what every adapter counts: the messages it passed on, their bodies' bytes, and
// its connections. An adapter embeds them; they are safe for concurrent use.
type Counters struct {
	messages, bytes, connects atomic.Uint64
}

// Passed counts one message passed on, with a body of n bytes.
func (c *Counters) Passed(n int) {
	c.messages.Add(1)
	c.bytes.Add(uint64(n))
}

// Connected counts one connection that got as far as reading.
func (c *Counters) Connected() { c.connects.Add(1) }

// Counts returns the counters' values.
func (c *Counters) Counts() Counts {
	return Counts{Messages: c.messages.Load(), Bytes: c.bytes.Load(), Connects: c.connects.Load()}
}

// Counts are Counters' values, as GET /v1/sources shows them under adapter.
type Counts struct {
	// Messages counts the messages passed on; Bytes their bodies' total size.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// Connects counts the connections that got as far as reading.
	Connects uint64 `json:"connects"`
}
