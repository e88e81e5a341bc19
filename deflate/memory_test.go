package deflate

import (
	"fmt"
	"io"
	"runtime"
	"testing"
	"unsafe"

	"github.com/ecows/ecows/internal/wstest"
)

// TestIdleMemory measures the live heap of 1,000 Compressors and 1,000 Inflaters that have
// each passed more than a window of messages and are now idle: with context takeover each
// holds its struct and its window (at 10 bits at most 1.2 KiB of it, issue 20), without it its
// struct alone. No engine stays with either between messages.
func TestIdleMemory(t *testing.T) {
	const n = 1000
	for _, tc := range []struct {
		bits     int
		takeover bool
		window   int64 // bytes allowed beyond the struct
	}{
		{10, true, 1229},
		{MaxWindowBits, true, 32<<10 + 205},
		{10, false, 0},
		{MaxWindowBits, false, 0},
	} {
		// the struct, rounded up to its size class, and the pointer that keeps it
		slack := int64(16 + 8)
		size := 1 << tc.bits * 2 / 3 // three fill the window
		msgs := [][]byte{textBytes(40, size), textBytes(41, size), textBytes(42, size)}
		t.Run(fmt.Sprintf("Compressor/bits%d/takeover=%t", tc.bits, tc.takeover), func(t *testing.T) {
			cs := make([]*Compressor, n)
			per := heapPerInstance(n, func(i int) {
				c := NewCompressor(BestSpeed, tc.bits, tc.takeover)
				for _, m := range msgs {
					c.Start(io.Discard)
					c.Write(m)
					c.Finish()
				}
				cs[i] = c
			})
			runtime.KeepAlive(cs)
			t.Logf("%d bytes per idle Compressor", per)
			if limit := int64(unsafe.Sizeof(Compressor{})) + slack + tc.window; per > limit {
				t.Fatalf("an idle Compressor holds %d bytes, more than %d", per, limit)
			}
		})
		t.Run(fmt.Sprintf("Inflater/bits%d/takeover=%t", tc.bits, tc.takeover), func(t *testing.T) {
			c := NewCompressor(BestSpeed, tc.bits, tc.takeover)
			var payloads [][]byte
			for _, m := range msgs {
				payloads = append(payloads, compress(t, c, m))
			}
			zs := make([]*Inflater, n)
			per := heapPerInstance(n, func(i int) {
				z := NewInflater(tc.bits, tc.takeover)
				for _, p := range payloads {
					inflate(z, p, whole, -1)
				}
				zs[i] = z
			})
			runtime.KeepAlive(zs)
			t.Logf("%d bytes per idle Inflater", per)
			if limit := int64(unsafe.Sizeof(Inflater{})) + slack + tc.window; per > limit {
				t.Fatalf("an idle Inflater holds %d bytes, more than %d", per, limit)
			}
		})
	}
}

// heapPerInstance calls build n times and returns the live heap it left, per call.
func heapPerInstance(n int, build func(i int)) int64 {
	before := wstest.LiveHeap()
	for i := range n {
		build(i)
	}
	return (int64(wstest.LiveHeap()) - int64(before)) / int64(n)
}
