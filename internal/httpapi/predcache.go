package httpapi

import (
	"sync"

	"github.com/streamux/streamux/internal/predicate"
)

// predicateCache compiles each predicate text once and shares the result: many clients send the
// same few predicates (one dashboard, many viewers), and a compiled predicate holds a few KiB
// and takes a millisecond of CEL checking. A compiled predicate is immutable and safe for
// concurrent use, so every subscription with the same text can hold the same one. Errors are
// not kept. The cache forgets everything when it reaches its size, which bounds what texts no
// longer in use can hold.
type predicateCache struct {
	limits predicate.Limits

	mu sync.Mutex
	m  map[string]*predicate.Predicate
}

// maxCachedPredicates bounds a predicateCache.
const maxCachedPredicates = 4096

func newPredicateCache(l predicate.Limits) *predicateCache {
	return &predicateCache{limits: l, m: make(map[string]*predicate.Predicate)}
}

// compile returns the compiled where, compiling it if it is not cached.
func (c *predicateCache) compile(where string) (*predicate.Predicate, error) {
	c.mu.Lock()
	p, ok := c.m[where]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := predicate.Compile(where, c.limits)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.m[where]; ok {
		return q, nil // compiled meanwhile by another request
	}
	if len(c.m) >= maxCachedPredicates {
		clear(c.m)
	}
	c.m[where] = p
	return p, nil
}
