//go:build race

package deflate

// raceEnabled says that the tests run under the race detector, which makes the package's
// engines about ten times slower and sync.Pool drop a quarter of them: tests that measure by
// numbers of instances use fewer.
const raceEnabled = true
