//go:build race

package reliability

// raceEnabled is true under the race detector, whose shadow memory grows the process's RSS
// with every page of heap it touches; the memory tests account for it (see memory_test.go).
const raceEnabled = true
