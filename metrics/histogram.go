package metrics

import (
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
)

// sizeBounds are the upper bounds of the message size buckets: 16 bytes to 1 MiB, by fours.
var sizeBounds = [...]float64{16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, math.Inf(1)}

// rttBounds are the upper bounds of the ping round-trip buckets, in seconds.
var rttBounds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, math.Inf(1)}

// SizeBounds returns the upper bounds, in bytes, of the buckets of the message size
// histogram (ecows_message_size_bytes), +Inf left out, for other exporters to use the same.
func SizeBounds() []float64 { return slices.Clone(sizeBounds[:len(sizeBounds)-1]) }

// RTTBounds returns the upper bounds, in seconds, of the buckets of the ping round-trip
// histogram (ecows_ping_rtt_seconds), +Inf left out.
func RTTBounds() []float64 { return slices.Clone(rttBounds[:len(rttBounds)-1]) }

// sizeBucket returns the index in sizeBounds of the bucket for n bytes, without a search.
func sizeBucket(n int64) int {
	if n <= 16 {
		return 0
	}
	// Bucket i holds up to 16·4^i bytes: i is the rounded-up log4 of n/16.
	return min((bits.Len64(uint64(n-1))-3)/2, len(sizeBounds)-1)
}

// histogram counts observations per bucket; the bucket counts are not cumulative until
// metric makes them so.
type histogram struct {
	counts []atomic.Uint64
	sum    atomic.Uint64 // in the unit of the observations (bytes, nanoseconds)
}

func newHistogram(n int) histogram { return histogram{counts: make([]atomic.Uint64, n)} }

func (h *histogram) observe(bucket int, v uint64) {
	h.counts[bucket].Add(1)
	h.sum.Add(v)
}

// add counts n observations in bucket, and sum in the sum (a share of a batch's, possibly).
func (h *histogram) add(bucket int, n, sum uint64) {
	h.counts[bucket].Add(n)
	if sum != 0 {
		h.sum.Add(sum)
	}
}

// metric returns h as a Metric, its sum multiplied by scale.
func (h *histogram) metric(labels []Label, bounds []float64, scale float64) Metric {
	m := Metric{Labels: labels, Buckets: make([]Bucket, len(bounds))}
	for i := range bounds {
		m.Count += h.counts[i].Load()
		m.Buckets[i] = Bucket{UpperBound: bounds[i], Count: m.Count}
	}
	m.Sum = float64(h.sum.Load()) * scale
	return m
}
