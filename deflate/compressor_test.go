package deflate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ecows/ecows/internal/deflatewalk"
)

// TestCompressorWindowBound walks every message compressed under a window of 2^bits bytes
// and checks that no back-reference reaches further, with context takeover (the walker primed
// with the last 2^bits bytes sent) and without. The traffic repeats itself at every distance
// up to 64 KiB, so an engine that ignored the window would be caught; that it refers as far
// back as allowed shows the walker sees the references.
func TestCompressorWindowBound(t *testing.T) {
	base := textBytes(30, 70000)
	msgs := [][]byte{base[:300], base[:5000], base[100:40000], base[:70000], base[3000:9000], base[1:200]}
	eachMode(t, func(t *testing.T, level, bits int, takeover bool) {
		c := NewCompressor(level, bits, takeover)
		var sent []byte
		farthest := 0
		for i, msg := range msgs {
			var dict []byte
			if takeover {
				dict = lastBytes(sent, 1<<bits)
			}
			payload := compress(t, c, msg)
			out, st, err := deflatewalk.Walk(append(payload, end9...), dict)
			if err != nil || !bytes.Equal(out, msg) {
				t.Fatalf("message %d: the walker inflates %d bytes of %d, %v", i, len(out), len(msg), err)
			}
			if st.MaxDist > 1<<bits {
				t.Fatalf("message %d refers %d bytes back, past its %d-byte window", i, st.MaxDist, 1<<bits)
			}
			farthest = max(farthest, st.MaxDist)
			sent = append(sent, msg...)
		}
		switch {
		case level == HuffmanOnly && farthest != 0:
			t.Fatalf("Huffman coding alone refers %d bytes back", farthest)
		case level != HuffmanOnly && farthest < 1<<bits*3/4:
			t.Fatalf("the farthest reference is %d bytes back, in a window of %d", farthest, 1<<bits)
		}
	})
}

// TestCompressorAbort: a message aborted part way, with context takeover, never reached the
// peer whole, so the next message must refer to nothing before it: compress/flate with no
// dictionary inflates it. A message that repeats the one before refers to it otherwise.
func TestCompressorAbort(t *testing.T) {
	m1 := textBytes(31, 900) // within the smallest window tried
	for _, bits := range []int{10, MaxWindowBits} {
		for _, tc := range []struct {
			name  string
			abort func(c *Compressor)
		}{
			{"inside a message", func(c *Compressor) {
				c.Start(io.Discard)
				c.Write(m1[:500])
				c.Abort()
			}},
			{"begun, nothing written", func(c *Compressor) { c.Start(io.Discard); c.Abort() }},
			{"between messages", func(c *Compressor) { c.Abort() }},
		} {
			t.Run(fmt.Sprintf("bits%d/%s", bits, tc.name), func(t *testing.T) {
				c := NewCompressor(BestSpeed, bits, true)
				compress(t, c, m1)
				tc.abort(c)
				payload := compress(t, c, m1)
				if got, err := stdInflate(payload, nil); err != nil || !bytes.Equal(got, m1) {
					t.Fatalf("after Abort, inflated with no dictionary: %d bytes of %d, %v", len(got), len(m1), err)
				}
				if again := compress(t, c, m1); len(again) > len(payload)/4 {
					t.Fatalf("the message after: %d bytes; it does not refer to the one before (%d bytes)", len(again), len(payload))
				}
			})
		}
	}
}

// failWriter fails every Write once it has taken n bytes.
type failWriter struct{ n int }

var errWire = errors.New("wire broken")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errWire
	}
	w.n -= len(p)
	return len(p), nil
}

// TestCompressorWriteError: an error of the destination comes back from Write or Finish, and
// the message after refers to nothing before it (the peer lacks part of this one), whether the
// caller then calls Finish or Abort. The engine, back in its pool, works for the next message.
func TestCompressorWriteError(t *testing.T) {
	small, large := textBytes(32, 2000), randomBytes(33, 300000)
	for _, tc := range []struct {
		name    string
		msg     []byte
		after   int  // bytes the destination takes
		inWrite bool // Write fails, not Finish
		abort   bool
	}{
		{"in Finish", small, 10, false, false},
		{"in Finish, nothing taken", small, 0, false, false},
		{"in Write, then Finish", large, 1000, true, false},
		{"in Write, then Abort", large, 1000, true, true},
	} {
		for _, bits := range []int{10, MaxWindowBits} {
			t.Run(fmt.Sprintf("%s/bits%d", tc.name, bits), func(t *testing.T) {
				c := NewCompressor(BestSpeed, bits, true)
				compress(t, c, small)
				c.Start(&failWriter{n: tc.after})
				n, err := c.Write(tc.msg)
				switch {
				case err != nil && !tc.inWrite:
					t.Fatalf("Write of %d bytes failed: %v", len(tc.msg), err)
				case err == nil && tc.inWrite:
					t.Fatalf("Write of %d bytes did not fail", len(tc.msg))
				case err != nil && (!errors.Is(err, errWire) || n == len(tc.msg)):
					t.Fatalf("Write: %d of %d bytes, %v", n, len(tc.msg), err)
				}
				if tc.abort {
					c.Abort()
				} else if err := c.Finish(); !errors.Is(err, errWire) {
					t.Fatalf("Finish: %v, want %v", err, errWire)
				}
				payload := compress(t, c, small)
				if got, err := stdInflate(payload, nil); err != nil || !bytes.Equal(got, small) {
					t.Fatalf("after the error, inflated with no dictionary: %d bytes, %v", len(got), err)
				}
			})
		}
	}
}

// TestCompressorLevels: 0 and a level out of range are DefaultLevel, and -1 is the engine's
// default level (5), as compress/flate's DefaultCompression; below the full window only
// HuffmanOnly differs from the rest. The same output shows it.
func TestCompressorLevels(t *testing.T) {
	msg := textBytes(34, 20000)
	for _, tc := range []struct{ level, as int }{
		{0, DefaultLevel}, {-3, DefaultLevel}, {BestCompress + 1, DefaultLevel}, {100, DefaultLevel}, {-1, 5},
	} {
		want := AppendCompressed(nil, msg, tc.as, MaxWindowBits)
		if got := AppendCompressed(nil, msg, tc.level, MaxWindowBits); !bytes.Equal(got, want) {
			t.Errorf("level %d: %d bytes, not level %d's %d", tc.level, len(got), tc.as, len(want))
		}
	}
	sizes := map[int]int{}
	for _, level := range []int{HuffmanOnly, BestSpeed, 5, BestCompress} {
		sizes[len(AppendCompressed(nil, msg, level, MaxWindowBits))] = level
	}
	if len(sizes) != 4 {
		t.Errorf("levels HuffmanOnly, 1, 5 and 9 do not compress differently: sizes %v", sizes)
	}
	// Below the full window the level is ignored, except HuffmanOnly.
	want := AppendCompressed(nil, msg, BestSpeed, 12)
	for _, level := range []int{5, BestCompress} {
		if got := AppendCompressed(nil, msg, level, 12); !bytes.Equal(got, want) {
			t.Errorf("bits 12, level %d: %d bytes, not BestSpeed's %d", level, len(got), len(want))
		}
	}
	if got := AppendCompressed(nil, msg, HuffmanOnly, 12); bytes.Equal(got, want) {
		t.Errorf("bits 12: HuffmanOnly compresses as BestSpeed does")
	}
}

// TestAppendCompressed: it appends what a Compressor without takeover writes.
func TestAppendCompressed(t *testing.T) {
	for _, msg := range [][]byte{nil, []byte("a"), textBytes(35, 5000), randomBytes(36, 70000)} {
		for _, bits := range []int{MinWindowBits, 12, MaxWindowBits} {
			want := compress(t, NewCompressor(BestSpeed, bits, false), msg)
			got := AppendCompressed([]byte("prefix"), msg, BestSpeed, bits)
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("%d bytes, bits %d: AppendCompressed differs from a Compressor", len(msg), bits)
			}
			if out, err := stdInflate(got[6:], nil); err != nil || !bytes.Equal(out, msg) {
				t.Fatalf("%d bytes, bits %d: compress/flate inflates %d bytes, %v", len(msg), bits, len(out), err)
			}
		}
	}
}

// TestTailWriter writes data in pieces of many sizes through a tailWriter: all but its last
// four bytes must pass, in order, and those four be held.
func TestTailWriter(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	for _, cuts := range [][]int{
		{20}, {1, 1, 1, 1, 1, 15}, {4, 16}, {3, 3, 14}, {2, 5, 1, 8, 4}, {0, 19, 0, 1}, {16, 1, 1, 1, 1}, {5, 0, 15},
	} {
		var out bytes.Buffer
		tw := tailWriter{w: &out}
		rest := data
		for _, n := range cuts {
			if k, err := tw.Write(rest[:n]); k != n || err != nil {
				t.Fatalf("cuts %v: Write = %d, %v", cuts, k, err)
			}
			rest = rest[n:]
		}
		if out.String() != string(data[:16]) || tw.n != 4 || string(tw.held[:]) != "ghij" {
			t.Errorf("cuts %v: passed %q, held %q", cuts, out.String(), tw.held[:tw.n])
		}
	}
	tw := tailWriter{w: &failWriter{}}
	if _, err := tw.Write(data); !errors.Is(err, errWire) {
		t.Errorf("a failing destination: %v", err)
	}
}
