package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear over microseconds: exact below 64 µs, then 32 buckets per
// power of two (at most about 3% off), up to 2^40 µs. Clients on both cores record into it at
// once, so it is sharded and every count is an atomic add on the recording client's shard.
const (
	histLinear  = 64
	histSub     = 32
	histOctaves = 35
	histBuckets = histLinear + histOctaves*histSub
	histShards  = 16
)

type histShard struct {
	counts [histBuckets]atomic.Uint64
	_      [64]byte // keep neighbouring shards off each other's cache lines
}

// hist is a concurrent latency histogram. The zero value is empty and ready.
type hist struct {
	shards [histShards]histShard
	max    atomic.Int64 // nanoseconds
}

func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	n := bits.Len64(us) // ≥ 7
	shift := n - 6
	i := histLinear + (n-7)*histSub + int(us>>shift) - histSub
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketValue is the middle of bucket i, in microseconds.
func bucketValue(i int) float64 {
	if i < histLinear {
		return float64(i)
	}
	k := i - histLinear
	shift := k/histSub + 1
	lo := uint64(histSub+k%histSub) << shift
	return float64(lo) + float64(uint64(1)<<shift)/2
}

// record adds one latency of ns nanoseconds to shard s.
func (h *hist) record(s int, ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.shards[s&(histShards-1)].counts[bucketOf(uint64(ns/1000))].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// latency is a summary of a histogram.
type latency struct {
	n             uint64
	p50, p99, max time.Duration
}

func (h *hist) summary() latency {
	var counts [histBuckets]uint64
	var n uint64
	for s := range h.shards {
		for i := range counts {
			c := h.shards[s].counts[i].Load()
			counts[i] += c
			n += c
		}
	}
	l := latency{n: n, max: time.Duration(h.max.Load())}
	if n == 0 {
		return l
	}
	q := func(p float64) time.Duration {
		rank := uint64(p*float64(n-1)) + 1
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				return min(time.Duration(bucketValue(i)*1000), l.max)
			}
		}
		return l.max
	}
	l.p50, l.p99 = q(0.50), q(0.99)
	return l
}
