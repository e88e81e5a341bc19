package deflate

import (
	"fmt"
	"io"
	"runtime"
	"testing"
	"unsafe"

	"github.com/ecows/ecows/internal/wstest"
)

// TestIdleMemory measures the live heap of 1,000 Compressors and 1,000 Inflaters (100 at the
// full window) that have each passed more than a window of data and are now idle: with
// context takeover each holds its struct and its window (at 10 bits at most 1.2 KiB of it,
// issue 20; at 15 bits 32 KiB for the Inflater, and for the Compressor the 4 KiB it keeps),
// without it its struct alone. No engine stays with either between messages.
func TestIdleMemory(t *testing.T) {
	for _, tc := range []struct {
		bits     int
		takeover bool
		cwindow  int64 // bytes allowed beyond the struct, Compressor
		zwindow  int64 // and Inflater
		n        int   // instances: fewer with a full 32 KiB window, which each holds
	}{
		{10, true, 1229, 1229, 1000},
		{MaxWindowBits, true, sendContext + 205, 32<<10 + 205, 100},
		{10, false, 0, 0, 1000},
		{MaxWindowBits, false, 0, 0, 1000},
	} {
		n := tc.n
		if raceEnabled && tc.takeover {
			// Fewer windows to fill under the race detector. Without takeover the count stays:
			// the bound is the struct's size, and over a few hundred instances one stray
			// allocation elsewhere would move the figure per instance past it.
			n = max(n/4, 100)
		}
		// the struct, rounded up to its size class, and the interface that keeps it
		slack := int64(16 + 16)
		// One message larger than the window fills it.
		msgs := [][]byte{textBytes(40, 1<<tc.bits*3/2)}
		t.Run(fmt.Sprintf("Compressor/bits%d/takeover=%t", tc.bits, tc.takeover), func(t *testing.T) {
			per := heapPerInstance(n, func() any {
				c := NewCompressor(BestSpeed, tc.bits, tc.takeover)
				for _, m := range msgs {
					c.Start(io.Discard)
					c.Write(m)
					c.Finish()
				}
				return c
			})
			t.Logf("%d bytes per idle Compressor", per)
			if limit := int64(unsafe.Sizeof(Compressor{})) + slack + tc.cwindow; per > limit {
				t.Fatalf("an idle Compressor holds %d bytes, more than %d", per, limit)
			}
		})
		t.Run(fmt.Sprintf("Inflater/bits%d/takeover=%t", tc.bits, tc.takeover), func(t *testing.T) {
			c := NewCompressor(BestSpeed, tc.bits, tc.takeover)
			var payloads [][]byte
			for _, m := range msgs {
				payloads = append(payloads, compress(t, c, m))
			}
			per := heapPerInstance(n, func() any {
				z := NewInflater(tc.bits, tc.takeover)
				for _, p := range payloads {
					inflate(z, p, whole, -1)
				}
				return z
			})
			t.Logf("%d bytes per idle Inflater", per)
			if limit := int64(unsafe.Sizeof(Inflater{})) + slack + tc.zwindow; per > limit {
				t.Fatalf("an idle Inflater holds %d bytes, more than %d", per, limit)
			}
		})
	}
}

// heapPerInstance returns the live heap that n results of build hold, per result. A first
// call, whose result is garbage before the count starts, allocates what the package sets up
// once.
func heapPerInstance(n int, build func() any) int64 {
	build()
	before := wstest.LiveHeap()
	keep := make([]any, n)
	for i := range keep {
		keep[i] = build()
	}
	after := wstest.LiveHeap()
	runtime.KeepAlive(keep)
	return (int64(after) - int64(before)) / int64(n)
}
