package load

import (
	"math"
	"testing"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 50e6}, {0.99, 99e6}, {0.999, 99.9e6}} {
		got := h.Quantile(c.q)
		if math.Abs(got-c.want)/c.want > 0.02 {
			t.Errorf("q%v = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram has a quantile")
	}
}

func TestBucketsMonotonic(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<22; v += 7 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", v, b, prev)
		}
		if lo := bucketValue(b); math.Abs(lo-float64(v)) > 0.02*float64(v)+1 {
			t.Fatalf("bucketValue(bucketOf(%d)) = %v", v, lo)
		}
		prev = b
	}
	if bucketOf(math.MaxInt64) != histBuckets-1 {
		t.Error("huge values do not land in the last bucket")
	}
}

func TestAppendFrame(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := AppendFrame(nil, 2, key, make([]byte, n))
		hl := 6
		if n > 125 {
			hl += 2
		}
		if n > 65535 {
			hl += 6
		}
		if len(f) != hl+n || f[0] != 0x82 || f[1]&0x80 == 0 {
			t.Errorf("size %d: frame of %d bytes, header % x", n, len(f), f[:2])
		}
		for i := 0; i < n && i < 8; i++ {
			if f[hl+i] != key[i&3] {
				t.Fatalf("size %d: payload byte %d not masked", n, i)
			}
		}
	}
}
