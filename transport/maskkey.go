package transport

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"
)

// keyGens hold the generators of the masking keys a client puts on its frames: ChaCha8
// seeded from crypto/rand, since RFC 6455 section 5.3 asks for keys the network cannot
// predict. They are pooled rather than kept per Conn, where each would weigh 300 bytes.
var keyGens = sync.Pool{New: func() any {
	var seed [32]byte
	crand.Read(seed[:]) // never fails on supported platforms (Go 1.24+ crashes instead)
	return rand.NewChaCha8(seed)
}}

// newMaskKey returns a fresh masking key.
func newMaskKey() (k [4]byte) {
	g := keyGens.Get().(*rand.ChaCha8)
	binary.LittleEndian.PutUint32(k[:], uint32(g.Uint64()))
	keyGens.Put(g)
	return k
}
