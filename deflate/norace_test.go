//go:build !race

package deflate

// raceEnabled: see race_test.go.
const raceEnabled = false
