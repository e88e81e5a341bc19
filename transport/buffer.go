package transport

import (
	"math/bits"
	"sync"
)

// Buffers are borrowed from pools by size class and given back whenever a Conn has nothing in
// them, so that an idle connection holds no buffer at all: thousands of idle connections cost
// their Conns, not their buffers.

// minClass and maxClass bound the pooled sizes, 2^minClass to 2^maxClass bytes; a buffer
// outside them is allocated and left to the garbage collector.
const (
	minClass = 8
	maxClass = 20
)

var bufPools [maxClass - minClass + 1]sync.Pool

// sizeClass returns the pool index for a buffer of at least n bytes, or -1 when none fits.
func sizeClass(n int) int {
	if n <= 1<<minClass {
		return 0
	}
	k := bits.Len(uint(n - 1))
	if k > maxClass {
		return -1
	}
	return k - minClass
}

// getBuf returns a buffer of at least n bytes, at full length. It is a pointer, so that
// putting it back allocates nothing.
func getBuf(n int) *[]byte {
	k := sizeClass(n)
	if k < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := bufPools[k].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<(k+minClass))
	return &b
}

// putBuf gives b back for reuse; nothing may use it afterwards.
func putBuf(b *[]byte) {
	if n := cap(*b); n >= 1<<minClass && n&(n-1) == 0 {
		if k := sizeClass(n); k >= 0 {
			*b = (*b)[:n]
			bufPools[k].Put(b)
		}
	}
}
