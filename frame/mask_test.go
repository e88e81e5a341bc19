package frame

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// maskRef is RFC 6455 section 5.3 taken literally, one byte at a time: the oracle for Mask.
func maskRef(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

var maskTestKeys = [][4]byte{
	{0, 0, 0, 0},
	{0xff, 0xff, 0xff, 0xff},
	{0x37, 0xfa, 0x21, 0x3d}, // RFC 6455 section 5.7
	{0x01, 0x02, 0x04, 0x80},
}

// maskTestData returns n bytes that differ from each other and from the keys' patterns, so a
// byte masked with the wrong key byte shows.
func maskTestData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + i>>8 + 17)
	}
	return b
}

// maskPath is one of the ways Mask can mask a payload of 8 bytes or more: the pure-Go word
// loops, or one of the platform's assembly kernels. use makes Mask take the path and returns
// a function that puts back what was there before. The per-platform test files list the paths
// in maskPaths, the pure-Go one first; running a test under each of them checks every
// implementation against maskRef and, through it, against each other.
type maskPath struct {
	name string
	use  func() (restore func())
}

// forEachMaskPath runs f as a subtest under each of maskPaths.
func forEachMaskPath(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, p := range maskPaths() {
		t.Run(p.name, func(t *testing.T) {
			defer p.use()()
			f(t)
		})
	}
}

// maskGuard is how many bytes checkMask keeps on each side of the masked bytes, to catch a
// kernel that reads fine but writes one block too many or starts one block too early.
const maskGuard = 32

// checkMask masks n bytes that start off bytes past a guard into a buffer, with Mask and with
// maskRef, and fails if the results, the returned positions or the guard bytes differ.
func checkMask(t *testing.T, key [4]byte, pos, off, n int) {
	t.Helper()
	got := maskTestData(maskGuard + off + n + maskGuard)
	want := bytes.Clone(got)
	b := got[maskGuard+off : maskGuard+off+n]
	gotPos := Mask(key, pos, b)
	wantPos := maskRef(key, pos, want[maskGuard+off:maskGuard+off+n])
	if gotPos != wantPos {
		t.Fatalf("key %x pos %d off %d len %d: returned %d, want %d", key, pos, off, n, gotPos, wantPos)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("key %x pos %d off %d len %d:\n got %x\nwant %x", key, pos, off, n, got, want)
	}
}

// maskTestLongLens are lengths around the thresholds of the paths (maskAsmMin on amd64, where
// Mask starts calling the assembly, and maskAlignMin) and well past them.
var maskTestLongLens = []int{
	319, 320, 383, 384, 385, 388,
	maskAlignMin - 1, maskAlignMin, maskAlignMin + 1, maskAlignMin + 7,
	1000, 4096 + 13, 1<<16 + 3,
}

func TestMask(t *testing.T) {
	forEachMaskPath(t, func(t *testing.T) {
		// Every length through the byte loop, the word loops and the vector loops with
		// their heads and tails, at every key position and every start address modulo 32,
		// with the two keys whose bytes all differ, so that a key byte used at the wrong
		// position shows.
		for n := 0; n <= 300; n++ {
			for pos := 0; pos < 4; pos++ {
				for off := 0; off < 32; off++ {
					checkMask(t, maskTestKeys[2], pos, off, n)
					checkMask(t, maskTestKeys[3], pos, off, n)
				}
			}
		}
		for _, key := range maskTestKeys {
			for _, n := range maskTestLongLens {
				for pos := 0; pos < 4; pos++ {
					for off := 0; off < 32; off += 3 {
						checkMask(t, key, pos, off, n)
					}
				}
			}
		}
		checkMask(t, maskTestKeys[2], 1, 2, 1<<20+5)
	})
}

func TestMaskPositions(t *testing.T) {
	forEachMaskPath(t, func(t *testing.T) {
		// Only pos&3 matters, whatever the sign or size of pos.
		key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
		for _, pos := range []int{-1, -4, -7, int(^uint(0) >> 2), -int(^uint(0) >> 2), int(^uint(0) >> 1), -int(^uint(0)>>1) - 1} {
			for _, n := range []int{0, 3, 13, 100, 1000} {
				checkMask(t, key, pos, 1, n)
			}
		}
	})
}

func TestMaskStreaming(t *testing.T) {
	forEachMaskPath(t, func(t *testing.T) {
		key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
		for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 130, 600, 1100} {
			for pos := 0; pos < 4; pos++ {
				want := maskTestData(n)
				maskRef(key, pos, want)
				// Two pieces, split at every point.
				for split := 0; split <= n; split++ {
					got := maskTestData(n)
					p := Mask(key, Mask(key, pos, got[:split]), got[split:])
					if p != (pos+n)&3 || !bytes.Equal(got, want) {
						t.Fatalf("len %d pos %d split %d: returned %d,\n got %x\nwant %x", n, pos, split, p, got, want)
					}
				}
				// Many pieces of one size.
				for size := 1; size <= 17; size++ {
					got := maskTestData(n)
					p := pos
					for b := got; len(b) > 0; b = b[min(size, len(b)):] {
						p = Mask(key, p, b[:min(size, len(b))])
					}
					if p != (pos+n)&3 || !bytes.Equal(got, want) {
						t.Fatalf("len %d pos %d pieces of %d: returned %d,\n got %x\nwant %x", n, pos, size, p, got, want)
					}
				}
			}
		}
	})
}

func TestMaskAgreement(t *testing.T) {
	// Random keys, positions, alignments and contents through the pure-Go path, checked
	// against maskRef, and through every other path, checked against the pure-Go result.
	// Lengths favour the short ones, where the heads and tails of the kernels are most of the
	// work.
	paths := maskPaths()
	src := rand.NewChaCha8([32]byte{6, 4, 5, 5})
	rng := rand.New(src)
	for range 3000 {
		n := rng.IntN(300)
		if rng.IntN(4) == 0 {
			n = rng.IntN(20000)
		}
		off := rng.IntN(32)
		pos := rng.Int()
		var key [4]byte
		src.Read(key[:])
		in := make([]byte, maskGuard+off+n+maskGuard)
		src.Read(in)

		run := func(p maskPath) ([]byte, int) {
			defer p.use()()
			out := bytes.Clone(in)
			return out, Mask(key, pos, out[maskGuard+off:maskGuard+off+n])
		}
		want := bytes.Clone(in)
		wantPos := maskRef(key, pos, want[maskGuard+off:maskGuard+off+n])
		goOut, goPos := run(paths[0])
		if goPos != wantPos || !bytes.Equal(goOut, want) {
			t.Fatalf("%s: key %x pos %d off %d len %d: returned %d, want %d; bytes differ from maskRef: %v",
				paths[0].name, key, pos, off, n, goPos, wantPos, !bytes.Equal(goOut, want))
		}
		for _, p := range paths[1:] {
			if out, outPos := run(p); outPos != goPos || !bytes.Equal(out, goOut) {
				t.Fatalf("%s: key %x pos %d off %d len %d: returned %d, want %d; bytes differ from %s: %v",
					p.name, key, pos, off, n, outPos, goPos, paths[0].name, !bytes.Equal(out, goOut))
			}
		}
	}
}

func TestMaskAllocs(t *testing.T) {
	forEachMaskPath(t, func(t *testing.T) {
		b := maskTestData(4099)
		key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
		if n := testing.AllocsPerRun(100, func() { Mask(key, 1, b[1:]) }); n != 0 {
			t.Fatalf("Mask allocates %v times per call", n)
		}
	})
}

func FuzzMask(f *testing.F) {
	f.Add(byte(0x37), byte(0xfa), byte(0x21), byte(0x3d), 0, []byte("Hello"), 2)
	f.Add(byte(0), byte(0), byte(0), byte(0), 1, []byte("zero key"), 0)
	f.Add(byte(0xff), byte(0xff), byte(0xff), byte(0xff), 3, maskTestData(100), 50)
	f.Add(byte(1), byte(2), byte(3), byte(4), -5, maskTestData(1000), 333)
	f.Add(byte(9), byte(8), byte(7), byte(6), int(^uint(0)>>2), maskTestData(4100), 4099)
	paths := maskPaths()
	f.Fuzz(func(t *testing.T, k0, k1, k2, k3 byte, pos int, data []byte, split int) {
		key := [4]byte{k0, k1, k2, k3}
		want := bytes.Clone(data)
		wantPos := maskRef(key, pos, want)
		s := split % (len(data) + 1)
		if s < 0 {
			s += len(data) + 1
		}
		// The data also goes at an address that split picks modulo 32, between guard bytes.
		off := s & 31
		guarded := make([]byte, maskGuard+off+len(data)+maskGuard)
		wantGuarded := bytes.Clone(guarded)
		copy(wantGuarded[maskGuard+off:], want)

		// Every path, the pure-Go one first, must give what maskRef gives; so they agree.
		for _, path := range paths {
			func() {
				defer path.use()()

				got := bytes.Clone(data)
				if p := Mask(key, pos, got); p != wantPos || !bytes.Equal(got, want) {
					t.Fatalf("%s: Mask(%x, %d, %x) = %d, %x; want %d, %x", path.name, key, pos, data, p, got, wantPos, want)
				}

				// The same bytes masked in two pieces, split anywhere.
				got = bytes.Clone(data)
				if p := Mask(key, Mask(key, pos, got[:s]), got[s:]); p != wantPos || !bytes.Equal(got, want) {
					t.Fatalf("%s: split at %d: got %d, %x; want %d, %x", path.name, s, p, got, wantPos, want)
				}

				// Masking twice restores the data.
				Mask(key, pos, got)
				if !bytes.Equal(got, data) {
					t.Fatalf("%s: masking twice gave %x, want %x", path.name, got, data)
				}

				clear(guarded)
				copy(guarded[maskGuard+off:], data)
				Mask(key, pos, guarded[maskGuard+off:maskGuard+off+len(data)])
				if !bytes.Equal(guarded, wantGuarded) {
					t.Fatalf("%s: at offset %d:\n got %x\nwant %x", path.name, off, guarded, wantGuarded)
				}
			}()
		}
	})
}

var maskBenchSizes = []struct {
	name string
	n    int
}{
	{"16B", 16},
	{"128B", 128},
	{"512B", 512},
	{"4KiB", 4 << 10},
	{"1MiB", 1 << 20},
}

func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, size := range maskBenchSizes {
		b.Run(size.name, func(b *testing.B) {
			buf := make([]byte, size.n)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				Mask(key, 0, buf)
			}
		})
	}
}

// BenchmarkCopy is the yardstick for BenchmarkMask: the runtime's memmove over the same sizes,
// run on the same machine in the same process.
func BenchmarkCopy(b *testing.B) {
	for _, size := range maskBenchSizes {
		b.Run(size.name, func(b *testing.B) {
			src := make([]byte, size.n)
			dst := make([]byte, size.n)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}
