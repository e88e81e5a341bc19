//go:build !purego

package frame

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// maskPaths returns the pure-Go word loops, Mask as it is configured, and each assembly
// kernel this CPU can run, used from 8 bytes on so that short lengths reach the kernels' heads
// and tails.
func maskPaths() []maskPath {
	paths := []maskPath{
		{"go", useMaskAsm(math.MaxInt, maskAVX2)},
		{"default", useMaskAsm(maskAsmMin, maskAVX2)},
		{"sse2", useMaskAsm(0, false)},
	}
	if cpuHasAVX2() {
		paths = append(paths, maskPath{"avx2", useMaskAsm(0, true)})
	}
	return paths
}

// useMaskAsm returns a maskPath.use that sets maskAsmMin and maskAVX2.
func useMaskAsm(asmMin int, avx2 bool) func() func() {
	return func() func() {
		oldMin, oldAVX2 := maskAsmMin, maskAVX2
		maskAsmMin, maskAVX2 = asmMin, avx2
		return func() { maskAsmMin, maskAVX2 = oldMin, oldAVX2 }
	}
}

func TestMaskSIMD(t *testing.T) {
	// The kernels also take lengths below 8, which Mask never gives them.
	kernels := []bool{false}
	if cpuHasAVX2() {
		kernels = append(kernels, true)
	} else {
		t.Log("no AVX2 on this machine: testing the SSE2 kernel only")
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	word := binary.LittleEndian.Uint32(key[:])
	for _, avx2 := range kernels {
		for n := 0; n <= 300; n++ {
			for off := 0; off < 32; off++ {
				got := maskTestData(maskGuard + off + n + maskGuard)
				want := bytes.Clone(got)
				maskSIMD(got[maskGuard+off:maskGuard+off+n], word, avx2)
				maskRef(key, 0, want[maskGuard+off:maskGuard+off+n])
				if !bytes.Equal(got, want) {
					t.Fatalf("avx2 %v off %d len %d:\n got %x\nwant %x", avx2, off, n, got, want)
				}
			}
		}
	}
}
