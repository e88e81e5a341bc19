package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/internal/wstest"
)

// feedings are the ways the edge cases are fed: whole (inflated directly), in pieces of up to
// 40 bytes, and byte by byte (both through the coroutine).
var feedings = []struct {
	name string
	f    func() feeding
}{
	{"whole", func() feeding { return whole }},
	{"pieces", func() feeding { return pieces(5, 40, 64) }},
	{"bytes", func() feeding { return pieces(6, 1, 3) }},
}

// TestInflaterEmpty: a message that carries no byte inflates to nothing, whether its only
// frame is empty or it has several, and leaves the window as it was.
func TestInflaterEmpty(t *testing.T) {
	first := textBytes(1, 500)
	c := NewCompressor(BestSpeed, MaxWindowBits, true)
	p1, p2 := compress(t, c, first), compress(t, c, first) // p2 refers to p1
	for _, tc := range []struct {
		name  string
		feeds []bool // the final flag of each empty Feed
	}{
		{"final", []bool{true}},
		{"non-final then final", []bool{false, true}},
		{"three non-final then final", []bool{false, false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := NewInflater(MaxWindowBits, true)
			if got, err := inflate(z, p1, whole, -1); err != nil || !bytes.Equal(got, first) {
				t.Fatalf("first message: %d bytes, %v", len(got), err)
			}
			z.Begin()
			for i, final := range tc.feeds {
				z.Feed(nil, final)
				want := ErrNeedInput
				if final {
					want = io.EOF
				}
				if n, err := z.Read(make([]byte, 10)); n != 0 || err != want {
					t.Fatalf("Feed %d: Read = %d, %v; want 0, %v", i, n, err, want)
				}
				if !z.Consumed() {
					t.Fatalf("Feed %d: an empty Feed is not consumed", i)
				}
			}
			if n, err := z.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("Read after the end: %d, %v", n, err)
			}
			if got, err := inflate(z, p2, whole, -1); err != nil || !bytes.Equal(got, first) {
				t.Fatalf("the message after the empty one: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestInflaterEmptyThenData: empty pieces before and after a message's data change nothing.
func TestInflaterEmptyThenData(t *testing.T) {
	msg := textBytes(2, 3000)
	payload := AppendCompressed(nil, msg, BestSpeed, MaxWindowBits)
	z := NewInflater(MaxWindowBits, false)
	z.Begin()
	z.Feed(nil, false)
	z.Feed(nil, false)
	z.Feed(payload[:10], false)
	var got []byte
	buf := make([]byte, 100)
	for _, next := range [][]byte{nil, payload[10:], nil, nil} {
		for {
			n, err := z.Read(buf)
			got = append(got, buf[:n]...)
			if err == ErrNeedInput {
				break
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
		}
		z.Feed(next, false)
	}
	z.Feed(nil, true)
	rest, err := io.ReadAll(readerOf(z))
	if got = append(got, rest...); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes back of %d, %v", len(got), len(msg), err)
	}
}

// readerOf reads z's current message, for io.ReadAll: up to its end, or up to the first error.
func readerOf(z *Inflater) io.Reader { return zReader{z} }

type zReader struct{ z *Inflater }

func (r zReader) Read(p []byte) (int, error) { return r.z.Read(p) }

// TestInflaterCorrupt: data that is not DEFLATE, or does not end where the message does, fails
// with ErrCorrupt however it is fed, and keeps failing until the next message, which inflates.
func TestInflaterCorrupt(t *testing.T) {
	msg := textBytes(3, 20000)
	good := AppendCompressed(nil, msg, BestSpeed, MaxWindowBits)
	// A message compressed with a dictionary refers to bytes before its start.
	var primed bytes.Buffer
	w, _ := stdflate.NewWriterDict(&primed, stdflate.BestCompression, msg) // BestSpeed ignores a dictionary
	w.Write(msg[:5000])
	w.Flush()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"reserved block type", []byte{0x07, 0x00}},
		{"0xff", []byte{0xff}},
		{"stored length mismatch", []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}},
		{"random", randomBytes(9, 1000)},
		{"truncated by one byte", good[:len(good)-1]},
		{"truncated by two bytes", good[:len(good)-2]},
		{"truncated to half", good[:len(good)/2]},
		{"truncated to one byte", good[:1]},
		{"stored block cut short", []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'h', 'e'}},
		{"refers before the start", primed.Bytes()[:primed.Len()-4]},
	} {
		for _, fd := range feedings {
			t.Run(tc.name+"/"+fd.name, func(t *testing.T) {
				z := NewInflater(MaxWindowBits, false)
				got, err := inflate(z, tc.data, fd.f(), -1)
				if err != ErrCorrupt {
					t.Fatalf("%d bytes inflated, %v; want ErrCorrupt", len(got), err)
				}
				if n, err := z.Read(make([]byte, 100)); n != 0 || err != ErrCorrupt {
					t.Fatalf("Read after ErrCorrupt: %d, %v", n, err)
				}
				if got, err := inflate(z, good, fd.f(), -1); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("the next message: %d bytes of %d, %v", len(got), len(msg), err)
				}
			})
		}
	}
}

// finalBlockMsgs returns two messages as a peer sends them that ends its second message with
// a DEFLATE block with BFINAL set (RFC 7692 section 7.2.3.4), followed by trailer, and, when
// final is false, the same two with a sync flush instead. With context takeover the second
// refers to the first.
func finalBlockMsgs(t *testing.T, m1, m2, trailer []byte, final bool) (p1, p2 []byte) {
	var wire bytes.Buffer
	w, _ := stdflate.NewWriter(&wire, stdflate.BestCompression)
	w.Write(m1)
	w.Flush()
	p1 = bytes.Clone(wire.Bytes()[:wire.Len()-4])
	wire.Reset()
	w.Write(m2)
	if !final {
		w.Flush()
		return p1, wire.Bytes()[:wire.Len()-4]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p1, append(wire.Bytes(), trailer...)
}

// TestInflaterPeerFinalBlock: a message whose data ends with a block with BFINAL set inflates to
// that block's end, what follows it ignored; with context takeover, the peer starts its next
// message from an empty window, and so must the Inflater: a message that refers to the
// window then fails, where after a message ended by a sync flush it inflates.
func TestInflaterPeerFinalBlock(t *testing.T) {
	m1, m2 := textBytes(4, 3000), textBytes(5, 2000)
	// m3 repeats m1: compressed with m1 and m2 as the window, it refers to them.
	var wire bytes.Buffer
	w, _ := stdflate.NewWriterDict(&wire, stdflate.BestCompression, append(bytes.Clone(m1), m2...))
	w.Write(m1)
	w.Flush()
	p3 := wire.Bytes()[:wire.Len()-4]
	fresh := AppendCompressed(nil, m2, BestSpeed, MaxWindowBits)
	for _, tr := range []struct {
		name    string
		trailer []byte
	}{
		{"nothing after", nil},
		{"junk after", []byte{0xde, 0xad, 0xbe, 0xef, 0xff, 0x07}},
		{"another message after", fresh},
	} {
		for _, fd := range feedings {
			t.Run(tr.name+"/"+fd.name, func(t *testing.T) {
				for _, final := range []bool{false, true} {
					p1, p2 := finalBlockMsgs(t, m1, m2, tr.trailer, final)
					z := NewInflater(MaxWindowBits, true)
					for i, m := range []struct{ p, want []byte }{{p1, m1}, {p2, m2}} {
						if got, err := inflate(z, m.p, fd.f(), -1); err != nil || !bytes.Equal(got, m.want) {
							t.Fatalf("final block %t, message %d: %d bytes back of %d, %v", final, i+1, len(got), len(m.want), err)
						}
					}
					got, err := inflate(z, p3, fd.f(), -1)
					switch {
					case !final && (err != nil || !bytes.Equal(got, m1)):
						t.Fatalf("after a sync flush, the message referring to the window: %d bytes, %v", len(got), err)
					case final && err != ErrCorrupt:
						t.Fatalf("after a final block, the message referring to the window: %d bytes, %v; want ErrCorrupt", len(got), err)
					}
					if got, err := inflate(z, fresh, fd.f(), -1); err != nil || !bytes.Equal(got, m2) {
						t.Fatalf("final block %t, a message referring to nothing: %d bytes, %v", final, len(got), err)
					}
				}
			})
		}
	}
}

// TestInflaterClosed: after Close, Read fails with ErrClosed whatever came before or after.
func TestInflaterClosed(t *testing.T) {
	payload := AppendCompressed(nil, textBytes(6, 50000), BestSpeed, MaxWindowBits)
	for _, tc := range []struct {
		name   string
		before func(z *Inflater) // what happens before Close
		after  func(z *Inflater) // and after it
	}{
		{"fresh", func(*Inflater) {}, func(*Inflater) {}},
		{"after a message", func(z *Inflater) { inflate(z, payload, whole, -1) }, func(*Inflater) {}},
		{"inside a whole message", func(z *Inflater) { inflate(z, payload, whole, 100) }, func(*Inflater) {}},
		{"inside a message in pieces", func(z *Inflater) { inflate(z, payload, pieces(7, 100, 100), 1000) }, func(*Inflater) {}},
		{"closed twice", func(*Inflater) {}, func(z *Inflater) { z.Close() }},
		{"fed after", func(*Inflater) {}, func(z *Inflater) { z.Begin(); z.Feed(payload, true) }},
		{"fed in pieces after", func(*Inflater) {}, func(z *Inflater) { z.Begin(); z.Feed(payload[:10], false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			z := NewInflater(MaxWindowBits, true)
			tc.before(z)
			z.Close()
			tc.after(z)
			if n, err := z.Read(make([]byte, 100)); n != 0 || err != ErrClosed {
				t.Fatalf("Read = %d, %v; want ErrClosed", n, err)
			}
			if n, ok := wstest.WaitGoroutines(before, 5*time.Second); !ok {
				t.Fatalf("goroutines: %d before, %d after Close", before, n)
			}
		})
	}
}

// TestInflaterGoroutines: a message inflated in pieces runs a coroutine, which ends with the
// message: at its end, when Begin drops it, when it fails and the next one begins, and at
// Close. A message fed whole runs none. The coroutine is found by its stack, since the test
// runner's own goroutines may still be ending when a subtest starts; the goroutine count must
// be back where it was once the message ends.
func TestInflaterGoroutines(t *testing.T) {
	msg := textBytes(8, 50000)
	payload := AppendCompressed(nil, msg, BestSpeed, MaxWindowBits)
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, z *Inflater)
	}{
		{"message ends", func(t *testing.T, z *Inflater) {
			z.Feed(payload[100:], true)
			if _, err := io.ReadAll(readerOf(z)); err != nil {
				t.Fatal(err)
			}
		}},
		{"Begin drops it", func(t *testing.T, z *Inflater) { z.Begin() }},
		{"Close", func(t *testing.T, z *Inflater) { z.Close() }},
		{"fails, and the next begins", func(t *testing.T, z *Inflater) {
			z.Feed([]byte{0xff, 0xff, 0xff}, false)
			if _, err := io.ReadAll(readerOf(z)); err != ErrCorrupt {
				t.Fatalf("garbage: %v", err)
			}
			z.Begin()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			z := NewInflater(MaxWindowBits, false)
			z.Begin()
			z.Feed(payload[:100], false)
			if _, err := z.Read(make([]byte, 10)); err != nil && err != ErrNeedInput {
				t.Fatal(err)
			}
			if n := coroutines(); n != 1 {
				t.Fatalf("inside a message fed in pieces: %d coroutines", n)
			}
			tc.end(t, z)
			if n, ok := wstest.WaitGoroutines(before, 5*time.Second); !ok || coroutines() != 0 {
				t.Fatalf("goroutines: %d before, %d after; %d coroutines", before, n, coroutines())
			}
		})
	}
	t.Run("whole", func(t *testing.T) {
		z := NewInflater(MaxWindowBits, false)
		z.Begin()
		z.Feed(payload, true)
		if _, err := z.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		if n := coroutines(); n != 0 {
			t.Fatalf("inside a message fed whole: %d coroutines", n)
		}
	})
}

// coroutines counts the goroutines running an Inflater's coroutine.
func coroutines() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "deflate.(*Inflater).run(")
}

// TestInflaterBeginDrops: Begin in the middle of a message drops what is left of it, however
// far it got, and the next message inflates.
func TestInflaterBeginDrops(t *testing.T) {
	m1, m2 := textBytes(9, 30000), textBytes(10, 20000)
	p1 := AppendCompressed(nil, m1, BestSpeed, MaxWindowBits)
	p2 := AppendCompressed(nil, m2, BestSpeed, MaxWindowBits)
	for _, tc := range []struct {
		name  string
		start func(z *Inflater)
	}{
		{"begun only", func(z *Inflater) {}},
		{"fed, not read", func(z *Inflater) { z.Feed(p1[:500], false) }},
		{"read in part, whole", func(z *Inflater) { z.Feed(p1, true); z.Read(make([]byte, 1000)) }},
		{"read in part, in pieces", func(z *Inflater) { z.Feed(p1[:500], false); z.Read(make([]byte, 1000)) }},
		{"waiting for input", func(z *Inflater) { z.Feed(p1[:500], false); io.ReadAll(readerOf(z)) }},
		{"final fed, not read", func(z *Inflater) { z.Feed(p1[:500], false); z.Feed(p1[500:], true) }},
	} {
		for _, fd := range feedings {
			t.Run(tc.name+"/"+fd.name, func(t *testing.T) {
				z := NewInflater(MaxWindowBits, false)
				defer z.Close()
				z.Begin()
				tc.start(z)
				if got, err := inflate(z, p2, fd.f(), -1); err != nil || !bytes.Equal(got, m2) {
					t.Fatalf("the next message: %d bytes of %d, %v", len(got), len(m2), err)
				}
			})
		}
	}
}

// TestInflaterConsumedHungry follows Consumed and Hungry through a message fed in two pieces
// and then its end, and through one fed whole (which may be consumed before it is inflated:
// the engine reads its input through a buffer).
func TestInflaterConsumedHungry(t *testing.T) {
	msg := textBytes(11, 5000)
	payload := AppendCompressed(nil, msg, BestSpeed, MaxWindowBits)
	z := NewInflater(MaxWindowBits, false)
	check := func(when string, consumed, hungry bool) {
		t.Helper()
		if z.Consumed() != consumed || z.Hungry() != hungry {
			t.Fatalf("%s: Consumed %t, Hungry %t; want %t, %t", when, z.Consumed(), z.Hungry(), consumed, hungry)
		}
	}
	var got []byte
	readUntil := func(want error) {
		t.Helper()
		buf := make([]byte, 7)
		for range 1 << 20 {
			n, err := z.Read(buf)
			got = append(got, buf[:n]...)
			if err == want {
				return
			}
			if err != nil {
				t.Fatalf("Read: %v, want %v", err, want)
			}
			if n > 0 && z.Hungry() {
				t.Fatalf("Hungry with output coming")
			}
		}
		t.Fatal("no end")
	}
	z.Begin()
	z.Feed(payload[:200], false)
	check("first piece fed", false, false)
	readUntil(ErrNeedInput)
	check("first piece inflated", true, true)
	z.Feed(payload[200:], false)
	check("second piece fed", false, false)
	readUntil(ErrNeedInput)
	check("second piece inflated", true, true)
	z.Feed(nil, true)
	check("end fed", true, false)
	readUntil(io.EOF)
	check("message read", true, false)
	if !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes back of %d", len(got), len(msg))
	}

	z.Begin()
	z.Feed(payload, true)
	check("fed whole", false, false)
	buf := make([]byte, 100)
	if _, err := z.Read(buf); err != nil {
		t.Fatal(err)
	}
	if z.Hungry() {
		t.Fatal("reading a whole message: Hungry")
	}
	if _, err := io.ReadAll(readerOf(z)); err != nil {
		t.Fatal(err)
	}
	check("whole message read", true, false)
}

// TestInflaterHungryBeforeData: a message fed only empty pieces so far can give nothing before
// it is fed more, so it is hungry, as one whose data ran out is. A caller that asks Hungry
// whether to read the next frame (transport's RecvFrame does) would otherwise never read the
// frame after an empty first one, and hand out the same empty frame forever.
func TestInflaterHungryBeforeData(t *testing.T) {
	payload := AppendCompressed(nil, []byte("hello"), BestSpeed, MaxWindowBits)
	z := NewInflater(MaxWindowBits, false)
	z.Begin()
	for i := range 2 {
		z.Feed(nil, false)
		if n, err := z.Read(make([]byte, 10)); n != 0 || err != ErrNeedInput {
			t.Fatalf("empty piece %d: Read = %d, %v", i, n, err)
		}
		if !z.Consumed() || !z.Hungry() {
			t.Fatalf("empty piece %d: Consumed %t, Hungry %t; want both", i, z.Consumed(), z.Hungry())
		}
	}
	z.Feed(payload, true)
	if z.Hungry() {
		t.Fatal("Hungry with the message's last piece fed")
	}
	if got, err := io.ReadAll(readerOf(z)); err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
	if z.Hungry() {
		t.Fatal("Hungry after the end of the message")
	}
}

// TestInflaterErrors: the sentinels that callers tell apart are distinct.
func TestInflaterErrors(t *testing.T) {
	errs := []error{ErrNeedInput, ErrCorrupt, ErrClosed}
	for i, a := range errs {
		for j, b := range errs {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %t", a, b, errors.Is(a, b))
			}
		}
	}
}
