package predicate

import (
	"strconv"
	"strings"
	"sync"
)

// Body paths are interned across all predicates, so that an Input can keep, for the message it
// shows, the value of each path that some predicate read: DESIGN.md's "extract the referenced
// paths once per message". The number of paths is bounded; paths beyond it are read afresh by
// every predicate, which is correct, only slower.
const maxPaths = 1024

var interned struct {
	sync.Mutex
	ids map[string]int
}

// internPath returns the path's number, or -1 when it is not a body path below the root or
// maxPaths are taken.
func internPath(root string, segs []segment) int {
	if root != varBody || len(segs) == 0 {
		return -1
	}
	// Length-prefixed, so that no name can make two paths look alike.
	var b strings.Builder
	for _, s := range segs {
		if s.isIndex {
			b.WriteString("#" + strconv.FormatInt(s.index, 10) + ";")
		} else {
			b.WriteString("." + strconv.Itoa(len(s.name)) + ":" + s.name)
		}
	}
	key := b.String()
	interned.Lock()
	defer interned.Unlock()
	if id, ok := interned.ids[key]; ok {
		return id
	}
	if len(interned.ids) >= maxPaths {
		return -1
	}
	if interned.ids == nil {
		interned.ids = make(map[string]int)
	}
	id := len(interned.ids)
	interned.ids[key] = id
	return id
}

// pathCache holds the values of interned paths for one message. An entry is current when its
// generation is the cache's; Reset moves to the next generation, which empties the cache
// without touching it.
type pathCache struct {
	gen     uint32
	entries []pathEntry
}

type pathEntry struct {
	gen uint32
	v   val
	err error
}

func (c *pathCache) reset() {
	c.gen++
	if c.gen == 0 {
		// After 2^32 messages, old entries could look current again.
		clear(c.entries)
		c.gen = 1
	}
}

func (c *pathCache) get(id int) *pathEntry {
	if id < len(c.entries) && c.entries[id].gen == c.gen && c.gen != 0 {
		return &c.entries[id]
	}
	return nil
}

func (c *pathCache) put(id int, v val, err error) {
	if c.gen == 0 {
		return // an Input that was never Reset
	}
	if id >= len(c.entries) {
		c.entries = append(c.entries, make([]pathEntry, id+1-len(c.entries))...)
	}
	c.entries[id] = pathEntry{gen: c.gen, v: v, err: err}
}
