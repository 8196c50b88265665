package httpapi

import (
	"time"

	"golang.org/x/time/rate"
)

// rateBuckets is a token bucket per key (an address, a credential). It forgets the buckets
// idle long enough to have refilled, at most once a minute, so that the map does not grow with
// every key ever seen. Its owner guards it with its own mutex.
type rateBuckets struct {
	rate     float64
	burst    int
	buckets  map[string]*bucket
	lastTrim time.Time
}

type bucket struct {
	*rate.Limiter
	seen time.Time
}

func newRateBuckets(r float64, burst int) rateBuckets {
	return rateBuckets{rate: r, burst: burst, buckets: map[string]*bucket{}}
}

// take takes a token of key's bucket at now. When none is left it takes nothing and returns
// how long until one is due.
func (rb *rateBuckets) take(key string, now time.Time) (wait time.Duration, ok bool) {
	rb.trim(now)
	b := rb.buckets[key]
	if b == nil {
		b = &bucket{Limiter: rate.NewLimiter(rate.Limit(rb.rate), rb.burst)}
		rb.buckets[key] = b
	}
	b.seen = now
	res := b.ReserveN(now, 1)
	if res.OK() && res.DelayFrom(now) == 0 {
		return 0, true
	}
	wait = res.DelayFrom(now)
	res.CancelAt(now)
	return wait, false
}

func (rb *rateBuckets) trim(now time.Time) {
	if now.Sub(rb.lastTrim) < time.Minute {
		return
	}
	rb.lastTrim = now
	full := time.Duration(float64(rb.burst)/rb.rate*float64(time.Second)) + time.Second
	for k, b := range rb.buckets {
		if now.Sub(b.seen) > full {
			delete(rb.buckets, k)
		}
	}
}
