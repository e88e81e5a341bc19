//go:build race

package transport

// raceEnabled is true under the race detector, which makes sync.Pool drop a share of what is
// put back on purpose, so allocation counts of pooled paths are checked without it only.
const raceEnabled = true
