package deflatewalk

import (
	"bytes"
	stdflate "compress/flate"
	"io"
	"math/rand/v2"
	"testing"
)

// end9 ends a message as a receiver does: the tail a sender removed, then an empty final
// stored block.
var end9 = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// textBytes returns n bytes of words, which compress with references of every distance.
func textBytes(seed uint64, n int) []byte {
	words := []string{"the", "window", "message", "deflate", "peer", "frame", "compress", "of", "a", "connection", "context", "takeover"}
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(append(b, words[rng.IntN(len(words))]...), ' ')
	}
	return b[:n]
}

// randomBytes returns n incompressible bytes.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestWalker checks the walker on compress/flate's output: it must inflate what compress/flate
// compressed, see every kind of block, and find the distances that the data sets.
func TestWalker(t *testing.T) {
	rnd := randomBytes(20, 1000)
	var seen [3]int
	for _, tc := range []struct {
		name    string
		level   int
		data    []byte
		dict    []byte
		maxDist int // exactly, when not -1
	}{
		{"stored", stdflate.NoCompression, textBytes(20, 70000), nil, 0},
		{"huffman only", stdflate.HuffmanOnly, textBytes(21, 5000), nil, 0},
		{"empty", stdflate.BestSpeed, nil, nil, 0},
		{"short", stdflate.BestCompression, []byte("hello, hello"), nil, 7},
		{"prose", stdflate.DefaultCompression, textBytes(22, 100000), nil, -1},
		{"repeat 1000 back", stdflate.BestCompression, append(bytes.Clone(rnd), rnd...), nil, 1000},
		{"repeat of the dictionary", stdflate.BestCompression, rnd[:500], rnd, 1000},
		{"run", stdflate.BestSpeed, bytes.Repeat([]byte{'a'}, 1000), nil, 1},
	} {
		var b bytes.Buffer
		w, _ := stdflate.NewWriterDict(&b, tc.level, tc.dict)
		w.Write(tc.data)
		w.Flush()
		out, st, err := Walk(append(b.Bytes(), end9[4:]...), tc.dict)
		switch {
		case err != nil || !bytes.Equal(out, tc.data):
			t.Errorf("%s: the walker inflates %d bytes of %d, %v", tc.name, len(out), len(tc.data), err)
		case tc.maxDist >= 0 && st.MaxDist != tc.maxDist:
			t.Errorf("%s: the walker finds references up to %d back, want %d", tc.name, st.MaxDist, tc.maxDist)
		case st.MaxDist > 1<<15 || tc.maxDist < 0 && st.MaxDist < 1<<14:
			t.Errorf("%s: the walker finds references up to %d back", tc.name, st.MaxDist)
		}
		for i, n := range st.Blocks {
			seen[i] += n
		}
	}
	if seen[0] == 0 || seen[1] == 0 || seen[2] == 0 {
		t.Errorf("blocks seen by type (stored, fixed, dynamic): %v", seen)
	}
}

// TestWalkerRefuses: the walker fails on what it cannot inflate, so that it cannot pass a
// stream by mistake.
func TestWalkerRefuses(t *testing.T) {
	var b bytes.Buffer
	dict := textBytes(23, 2000)
	w, _ := stdflate.NewWriterDict(&b, stdflate.BestCompression, dict)
	w.Write(textBytes(23, 1000))
	w.Close()
	for _, tc := range []struct {
		name       string
		data, dict []byte
		want       error
	}{
		{"no dictionary", b.Bytes(), nil, ErrFar},
		{"truncated", b.Bytes()[:b.Len()/2], dict, io.ErrUnexpectedEOF},
		{"reserved block type", []byte{0x07}, nil, ErrData},
		{"stored length mismatch", []byte{0x01, 0x05, 0x00, 0x00, 0x00}, nil, ErrData},
		{"no final block", []byte{0x00, 0x00, 0x00, 0xff, 0xff}, nil, io.ErrUnexpectedEOF},
	} {
		if _, _, err := Walk(tc.data, tc.dict); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
