package wstest

import (
	"runtime"
	"testing"
	"time"
)

// wait bounds every wait of the package: long enough for a loaded 2-core machine to finish
// what a passing test started, short enough to fail a leaking one promptly.
const wait = 5 * time.Second

// CheckGoroutines fails t if, when t ends, more goroutines run than when CheckGoroutines was
// called, after waiting a bounded time for them to end; the failure lists every goroutine's
// stack. Call it first in a test: cleanups run last-registered first, so its check then runs
// after the cleanups that close the test's connections and servers.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	checkGoroutines(t, wait)
}

// checkGoroutines is CheckGoroutines waiting up to within, so that its own test of a leak
// need not wait as long as a real one.
func checkGoroutines(t testing.TB, within time.Duration) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		if n, ok := WaitGoroutines(before, within); !ok {
			t.Errorf("goroutines: %d before, %d after\n%s", before, n, stacks())
		}
	})
}

// WaitGoroutines waits up to within for the number of goroutines to fall to n or below. It
// returns the last count it saw and whether that count was n or below.
func WaitGoroutines(n int, within time.Duration) (int, bool) {
	deadline := time.Now().Add(within)
	for {
		got := runtime.NumGoroutine()
		if got <= n {
			return got, true
		}
		if time.Now().After(deadline) {
			return got, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stacks returns the stacks of all goroutines, cut at 1 MiB.
func stacks() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}
