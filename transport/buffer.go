package transport

import "github.com/ecows/ecows/internal/pool"

// Buffers are borrowed from package pool by size class and given back whenever a Conn has
// nothing in them, so that an idle connection holds no buffer at all: thousands of idle
// connections cost their Conns, not their buffers.

// getBuf and putBuf are pool.Get and pool.Put under the names compress.go calls them by,
// until the compression engine moves to a package of its own.
func getBuf(n int) *[]byte { return pool.Get(n) }

func putBuf(b *[]byte) { pool.Put(b) }
