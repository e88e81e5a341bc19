// Package pool holds transport's free lists: byte buffers by size class, borrowed while bytes
// move and given back when a connection waits, so that an idle connection holds none, and Of,
// a typed sync.Pool for the state a connection borrows the same way.
package pool

import (
	"math/bits"
	"sync"
)

// minClass and maxClass bound the pooled sizes, 2^minClass to 2^maxClass bytes; a buffer
// outside them is allocated and left to the garbage collector.
const (
	minClass = 8
	maxClass = 20
)

var classes [maxClass - minClass + 1]sync.Pool

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

// Get returns a buffer of at least n bytes, at full length: a power of two from 256 bytes to
// 1 MiB, or exactly n bytes past that. It is a pointer, so that putting it back allocates
// nothing.
func Get(n int) *[]byte {
	k := sizeClass(n)
	if k < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := classes[k].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<(k+minClass))
	return &b
}

// Put gives b back for reuse; nothing may use it afterwards. A buffer whose capacity is not
// a pooled size is left to the garbage collector, so that Get never returns one too small.
func Put(b *[]byte) {
	if n := cap(*b); n >= 1<<minClass && n&(n-1) == 0 {
		if k := sizeClass(n); k >= 0 {
			*b = (*b)[:n]
			classes[k].Put(b)
		}
	}
}

// Of is a sync.Pool of *T; its zero value is empty and ready.
type Of[T any] struct{ p sync.Pool }

// Get returns a pooled *T, or a new zero one when the pool is empty. It is in the state Put
// was given it in: the caller of Put resets what must not carry over.
func (p *Of[T]) Get() *T {
	if x, ok := p.p.Get().(*T); ok {
		return x
	}
	return new(T)
}

// Put gives x back for reuse; nothing may use it afterwards.
func (p *Of[T]) Put(x *T) { p.p.Put(x) }
