package metrics

import (
	"math"
	"testing"
)

func TestSizeBucket(t *testing.T) {
	cases := []struct {
		n    int64
		want float64 // the bucket's upper bound
	}{
		{0, 16}, {1, 16}, {16, 16}, {17, 64}, {64, 64}, {65, 256}, {256, 256}, {257, 1024},
		{1024, 1024}, {1025, 4096}, {65536, 65536}, {65537, 262144}, {1 << 20, 1 << 20},
		{1<<20 + 1, math.Inf(1)}, {1 << 40, math.Inf(1)},
	}
	for _, c := range cases {
		if got := sizeBounds[sizeBucket(c.n)]; got != c.want {
			t.Errorf("size %d: bucket %v, want %v", c.n, got, c.want)
		}
	}
}

func TestHistogramMetric(t *testing.T) {
	h := newHistogram(len(sizeBounds))
	for _, n := range []int64{3, 16, 100, 100, 5000, 2 << 20} {
		h.observe(sizeBucket(n), uint64(n))
	}
	m := h.metric(nil, sizeBounds[:], 1)
	want := []uint64{2, 2, 4, 4, 4, 5, 5, 5, 5, 6} // cumulative
	for i, b := range m.Buckets {
		if b.UpperBound != sizeBounds[i] || b.Count != want[i] {
			t.Errorf("bucket %d: le %v count %d, want le %v count %d", i, b.UpperBound, b.Count, sizeBounds[i], want[i])
		}
	}
	if m.Count != 6 || m.Sum != 3+16+100+100+5000+2<<20 {
		t.Errorf("count %d sum %v", m.Count, m.Sum)
	}
}
