package bench

import (
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/gobwas/ws"
)

// BenchmarkMask compares masking throughput in place: ecows's frame.Mask, gobwas's ws.Cipher
// (assembly on amd64), and copy() of the same length between two buffers as the memory-bandwidth
// reference. The masked buffer starts 2 bytes past an 8-byte boundary, where a payload after a
// 2-byte header in an aligned read buffer starts.
func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		buf := make([]byte, size.n+8)[2:][:size.n] // offset like a payload after a 2-byte header
		src := make([]byte, size.n)
		b.Run(size.name+"/ecows", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				frame.Mask(key, 0, buf)
			}
		})
		b.Run(size.name+"/gobwas", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				ws.Cipher(buf, key, 0)
			}
		})
		b.Run(size.name+"/copy", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				copy(buf, src)
			}
		})
	}
}
