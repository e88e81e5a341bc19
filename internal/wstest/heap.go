package wstest

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
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

// HeapSampler records the largest HeapAlloc it sees while it runs. It forces no collection,
// so it sees garbage too: what it reports bounds from above what the process needed.
type HeapSampler struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	peak uint64 // written by the sampling goroutine; read once done is closed
}

// SampleHeap starts a HeapSampler that reads the heap at once and then every interval,
// until Stop or the end of t.
func SampleHeap(t testing.TB, every time.Duration) *HeapSampler {
	t.Helper()
	s := &HeapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var ms runtime.MemStats
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapAlloc)
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Stop stops the sampling, if it still runs, and returns the largest HeapAlloc seen.
func (s *HeapSampler) Stop() uint64 {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return s.peak
}
