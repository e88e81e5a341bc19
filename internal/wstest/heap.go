package wstest

import (
	"math"
	"runtime"
)

// LiveHeap returns the bytes of live heap objects (runtime.MemStats.HeapAlloc) once garbage
// collection has settled: it collects at least three times, because sync.Pool keeps what a
// collection takes from it one collection longer, and then, since what finalizers release
// (the descriptors of closed connections) goes a collection after them, until a collection
// frees less than 4 KiB, ten times at the most.
func LiveHeap() uint64 {
	var ms runtime.MemStats
	last := uint64(math.MaxUint64)
	for i := range 10 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if i >= 2 && ms.HeapAlloc <= last && last-ms.HeapAlloc < 4<<10 {
			break
		}
		last = ms.HeapAlloc
	}
	return ms.HeapAlloc
}
