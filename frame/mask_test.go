package frame

import (
	"bytes"
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

// checkMask masks n bytes that start off bytes into a guarded buffer, with Mask and with
// maskRef, and fails if the results, the returned positions or the guard bytes differ.
func checkMask(t *testing.T, key [4]byte, pos, off, n int) {
	t.Helper()
	const guard = 8
	got := maskTestData(off + n + guard)
	want := bytes.Clone(got)
	gotPos := Mask(key, pos, got[off:off+n])
	wantPos := maskRef(key, pos, want[off:off+n])
	if gotPos != wantPos {
		t.Fatalf("key %x pos %d off %d len %d: returned %d, want %d", key, pos, off, n, gotPos, wantPos)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("key %x pos %d off %d len %d:\n got %x\nwant %x", key, pos, off, n, got, want)
	}
}

func TestMask(t *testing.T) {
	// Every length through the short, 8-byte and 64-byte paths, at every key position and
	// every start address modulo 8.
	for _, key := range maskTestKeys {
		for n := 0; n <= 300; n++ {
			for pos := 0; pos < 8; pos++ {
				for off := 0; off < 8; off++ {
					checkMask(t, key, pos, off, n)
				}
			}
		}
	}
	// Lengths that take the alignment head, around its threshold and well past it.
	for _, key := range maskTestKeys {
		for _, n := range []int{maskAlignMin - 1, maskAlignMin, maskAlignMin + 1, maskAlignMin + 7,
			1000, 4096 + 13, 1<<16 + 3} {
			for pos := 0; pos < 8; pos++ {
				for off := 0; off < 8; off++ {
					checkMask(t, key, pos, off, n)
				}
			}
		}
	}
}

func TestMaskPositions(t *testing.T) {
	// Only pos&3 matters, whatever the sign or size of pos.
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, pos := range []int{-1, -4, -7, 1 << 40, -1 << 40, int(^uint(0) >> 1), -int(^uint(0)>>1) - 1} {
		for _, n := range []int{0, 3, 13, 100, 1000} {
			checkMask(t, key, pos, 1, n)
		}
	}
}

func TestMaskStreaming(t *testing.T) {
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
}

func TestMaskAllocs(t *testing.T) {
	b := maskTestData(4099)
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	if n := testing.AllocsPerRun(100, func() { Mask(key, 1, b[1:]) }); n != 0 {
		t.Fatalf("Mask allocates %v times per call", n)
	}
}

func FuzzMask(f *testing.F) {
	f.Add(byte(0x37), byte(0xfa), byte(0x21), byte(0x3d), 0, []byte("Hello"), 2)
	f.Add(byte(0), byte(0), byte(0), byte(0), 1, []byte("zero key"), 0)
	f.Add(byte(0xff), byte(0xff), byte(0xff), byte(0xff), 3, maskTestData(100), 50)
	f.Add(byte(1), byte(2), byte(3), byte(4), -5, maskTestData(1000), 333)
	f.Add(byte(9), byte(8), byte(7), byte(6), 1<<40, maskTestData(4100), 4099)
	f.Fuzz(func(t *testing.T, k0, k1, k2, k3 byte, pos int, data []byte, split int) {
		key := [4]byte{k0, k1, k2, k3}
		want := bytes.Clone(data)
		wantPos := maskRef(key, pos, want)

		got := bytes.Clone(data)
		if p := Mask(key, pos, got); p != wantPos || !bytes.Equal(got, want) {
			t.Fatalf("Mask(%x, %d, %x) = %d, %x; want %d, %x", key, pos, data, p, got, wantPos, want)
		}

		// The same bytes masked in two pieces, split anywhere.
		s := split % (len(data) + 1)
		if s < 0 {
			s += len(data) + 1
		}
		got = bytes.Clone(data)
		if p := Mask(key, Mask(key, pos, got[:s]), got[s:]); p != wantPos || !bytes.Equal(got, want) {
			t.Fatalf("split at %d: got %d, %x; want %d, %x", s, p, got, wantPos, want)
		}

		// Masking twice restores the data.
		Mask(key, pos, got)
		if !bytes.Equal(got, data) {
			t.Fatalf("masking twice gave %x, want %x", got, data)
		}
	})
}

var maskBenchSizes = []struct {
	name string
	n    int
}{
	{"16B", 16},
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
