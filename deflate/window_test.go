package deflate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestWindowBits(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{0, MaxWindowBits}, // the default
		{-1, MinWindowBits},
		{1, MinWindowBits},
		{MinWindowBits - 1, MinWindowBits},
		{MinWindowBits, MinWindowBits},
		{12, 12},
		{MaxWindowBits, MaxWindowBits},
		{MaxWindowBits + 1, MaxWindowBits},
		{64, MaxWindowBits},
	} {
		if got := windowBits(tc.in); got != tc.want {
			t.Errorf("windowBits(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestWindowAdd adds chunks of many sizes, from none to several windows, to windows of every
// size: after each, the window must hold exactly the last size bytes added, in a buffer no
// larger than the window and no more than twice what it holds (256 bytes at least).
func TestWindowAdd(t *testing.T) {
	chunkSizes := []struct {
		name string
		max  func(size int) int
	}{
		{"tiny", func(int) int { return 4 }},
		{"short", func(size int) int { return size / 3 }},
		{"around-size", func(size int) int { return size + 2 }},
		{"several-windows", func(size int) int { return 3 * size }},
	}
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, cs := range chunkSizes {
			t.Run(fmt.Sprintf("bits%d/%s", bits, cs.name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(bits), 4))
				w := newWindow(1 << bits)
				size := 1 << bits
				all := randomBytes(uint64(bits), 8*size)
				var added []byte
				for i := 0; len(added) < len(all); i++ {
					n := min(rng.IntN(cs.max(size)+1), len(all)-len(added))
					if i == 3 {
						n = min(size, len(all)-len(added)) // exactly one window, once
					}
					chunk := all[len(added) : len(added)+n]
					w.add(chunk)
					added = all[:len(added)+n]
					want := lastBytes(added, size)
					if !bytes.Equal(w.bytes(), want) {
						t.Fatalf("after %d bytes: the window holds %d bytes, not the last %d added", len(added), len(w.bytes()), len(want))
					}
					if c := cap(w.buf); c > size || c > max(2*len(want), 256) {
						t.Fatalf("after %d bytes: holding %d of a %d-byte window, the buffer's capacity is %d", len(added), len(want), size, c)
					}
				}
				if cap(w.buf) != size {
					t.Fatalf("a full window of %d bytes has a buffer of %d", size, cap(w.buf))
				}
			})
		}
	}
}

// TestWindowSmall: a connection whose messages are short keeps a small buffer, however many
// it exchanges, as long as they add up to less than the window.
func TestWindowSmall(t *testing.T) {
	w := newWindow(1 << MaxWindowBits)
	for i := range 20 {
		w.add([]byte(fmt.Sprintf("message %02d", i)))
	}
	if len(w.bytes()) != 200 || cap(w.buf) != 256 {
		t.Fatalf("20 messages of 10 bytes: %d bytes in a buffer of %d, want 200 in 256", len(w.bytes()), cap(w.buf))
	}
	if !bytes.HasPrefix(w.bytes(), []byte("message 00message 01")) || !bytes.HasSuffix(w.bytes(), []byte("message 19")) {
		t.Fatalf("window holds %q", w.bytes())
	}
}

func TestWindowGrow(t *testing.T) {
	for _, tc := range []struct {
		bits, have, capacity, n int
		want                    int // capacity after
	}{
		{MaxWindowBits, 0, 0, 1, 256},         // the smallest buffer
		{MaxWindowBits, 10, 256, 200, 256},    // room enough: the same buffer
		{MaxWindowBits, 200, 256, 300, 512},   // doubling
		{MaxWindowBits, 200, 256, 2000, 2000}, // more than double: what is asked
		{MinWindowBits, 0, 0, 1, 256},         // the window is the smallest buffer
		{10, 600, 600, 700, 1024},             // doubling, stopped at the window
		{10, 0, 0, 5000, 1024},                // never past the window
	} {
		w := newWindow(1 << tc.bits)
		w.buf = make([]byte, tc.have, tc.capacity)
		copy(w.buf, textBytes(7, tc.have))
		b := w.grow(tc.n)
		if cap(b) != tc.want || !bytes.Equal(b, textBytes(7, tc.have)) {
			t.Errorf("bits %d, %d bytes in %d, grow(%d): %d bytes in %d, want the same %d bytes in %d",
				tc.bits, tc.have, tc.capacity, tc.n, len(b), cap(b), tc.have, tc.want)
		}
	}
}

// TestWindowReset: a reset window holds nothing, keeps its buffer, and fills again.
func TestWindowReset(t *testing.T) {
	w := newWindow(1 << 10)
	w.add(textBytes(1, 3000))
	w.reset()
	if len(w.bytes()) != 0 || cap(w.buf) != 1024 {
		t.Fatalf("reset: %d bytes in %d", len(w.bytes()), cap(w.buf))
	}
	w.add([]byte("again"))
	if string(w.bytes()) != "again" {
		t.Fatalf("after reset and add: %q", w.bytes())
	}
}
