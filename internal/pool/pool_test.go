package pool

import (
	"fmt"
	"testing"
)

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, class, size int }{
		{0, 0, 256}, {1, 0, 256}, {256, 0, 256}, {257, 1, 512}, {4096, 4, 4096},
		{4097, 5, 8192}, {1 << 20, maxClass - minClass, 1 << 20}, {1<<20 + 1, -1, 1<<20 + 1},
	} {
		if got := sizeClass(tc.n); got != tc.class {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, got, tc.class)
		}
		b := Get(tc.n)
		if len(*b) != tc.size {
			t.Errorf("Get(%d) has %d bytes, want %d", tc.n, len(*b), tc.size)
		}
		Put(b)
	}
}

// TestPutRefusesOddSizes checks that a buffer that is not a pooled size is never pooled, so
// that Get cannot hand out one that is too small, and that a buffer put back short comes
// back at full length.
func TestPutRefusesOddSizes(t *testing.T) {
	odd := make([]byte, 300)
	Put(&odd)
	small := make([]byte, 128)
	Put(&small)
	short := make([]byte, 10, 256)
	Put(&short)
	for range 100 {
		if b := Get(256); len(*b) != 256 {
			t.Fatalf("Get(256) returned %d bytes", len(*b))
		}
	}
}

func TestOf(t *testing.T) {
	type state struct{ n int }
	var p Of[state]
	x := p.Get()
	if x == nil || x.n != 0 {
		t.Fatalf("Get from an empty pool = %+v, want a new zero value", x)
	}
	x.n = 7
	p.Put(x)
	// sync.Pool may drop what it holds at any time: whatever Get returns is either the value
	// put back, as it was put, or a new zero one.
	if y := p.Get(); y.n != 7 && y.n != 0 {
		t.Fatalf("Get = %+v, want the value put back or a zero one", y)
	}
}

func Example() {
	b := Get(1000) // a 1 KiB buffer, from the pool when one is free
	n := copy(*b, "hello")
	fmt.Println(len(*b), string((*b)[:n]))
	Put(b) // b must not be used after this

	type reader struct{ pos, end int }
	var readers Of[reader]
	r := readers.Get()
	r.pos, r.end = 0, 5
	*r = reader{} // reset before it goes back
	readers.Put(r)
	// Output: 1024 hello
}
