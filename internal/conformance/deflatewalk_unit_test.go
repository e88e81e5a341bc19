package conformance

import (
	"bytes"
	"compress/flate"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// twice returns n random bytes and then the same n bytes again: the only matches of 4 bytes
// or more are exactly n bytes back.
func twice(seed uint64, n int) []byte {
	p := random(seed, n)
	return append(p, p...)
}

func random(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// flateStream compresses p with compress/flate at level: sync-flushed without its tail when
// flush is set, as permessage-deflate sends it, closed (a final block) otherwise.
func flateStream(t *testing.T, dict, p []byte, level int, flush bool) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, err := flate.NewWriterDict(&b, level, dict)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(p)
	if flush {
		fw.Flush()
		return bytes.TrimSuffix(b.Bytes(), deflateTail)
	}
	fw.Close()
	return b.Bytes()
}

// TestWalkDeflate walks compress/flate's output of every block type and checks what the
// walker decodes and the longest distance it reports, on data whose only back-references go
// a known distance back.
func TestWalkDeflate(t *testing.T) {
	const stored, fixed, dynamic = 1 << blockStored, 1 << blockFixed, 1 << blockDynamic
	text := []byte(jsonCorpus()[:40000])
	for _, tc := range []struct {
		name      string
		dict, p   []byte
		level     int
		flush     bool
		dist      int // the longest distance; -1: only check that it is within 32 KiB
		has, lack int // block types that must appear and must not (masks)
	}{
		{"stored", nil, random(1, 3000), flate.NoCompression, false, 0, stored, fixed | dynamic},
		{"huffman only", nil, text, flate.HuffmanOnly, true, 0, dynamic, stored | fixed},
		{"fixed", nil, []byte("abcabcabcabc"), flate.DefaultCompression, false, 3, fixed, stored | dynamic},
		{"dynamic, 100 back", nil, append(twice(2, 100), text[:3000]...), flate.BestSpeed, true, -1, dynamic, 0},
		{"dynamic, 1000 back", nil, append(text[:5000], twice(3, 1000)...), flate.DefaultCompression, true, -1, dynamic, 0},
		{"random twice, 100 back", nil, twice(4, 100), flate.BestCompression, true, 100, 0, 0},
		{"random twice, 20000 back", nil, twice(5, 20000), flate.BestCompression, false, 20000, 0, 0},
		{"random twice, 32768 back", nil, twice(6, 32768), flate.BestCompression, false, 32768, 0, 0},
		{"text", nil, text, flate.DefaultCompression, true, -1, dynamic, stored},
		{"dictionary", random(7, 500), append(random(7, 500), random(8, 1500)...), flate.DefaultCompression, true, 500, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := flateStream(t, tc.dict, tc.p, tc.level, tc.flush)
			w, err := walkDeflate(tc.dict, s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(w.out, append(bytes.Clone(tc.dict), tc.p...)) {
				t.Fatalf("walked %d bytes, want the %d of the dictionary and the input", len(w.out), len(tc.dict)+len(tc.p))
			}
			switch {
			case tc.dist >= 0 && w.maxDist != tc.dist:
				t.Errorf("longest distance %d, want %d", w.maxDist, tc.dist)
			case w.maxDist > 32768:
				t.Errorf("longest distance %d", w.maxDist)
			}
			for typ := range 3 {
				if got := w.blocks[typ]; tc.has&(1<<typ) != 0 && got == 0 || tc.lack&(1<<typ) != 0 && got != 0 {
					t.Errorf("blocks by type (stored, fixed, dynamic) %v; want types %03b, not %03b", w.blocks, tc.has, tc.lack)
				}
			}
		})
	}
}

// TestWalkDeflateErrors feeds the walker broken streams: each must fail, not decode.
func TestWalkDeflateErrors(t *testing.T) {
	good := flateStream(t, nil, []byte(jsonCorpus()[:3000]), flate.BestSpeed, true)
	fixed := deflateFixed(nil, []byte("abcabcabc"), 256)
	for _, tc := range []struct {
		name    string
		dict, p []byte
	}{
		{"cut inside a block", nil, good[:len(good)/2]},
		{"block type 3", nil, []byte{0x07}},
		{"stored LEN and NLEN disagree", nil, []byte{0x00, 0x05, 0x00, 0x00, 0x00}},
		{"reference before the start", nil, deflateFixedAt(t, 2)},
		{"reference before the dictionary", []byte("0123456789"), deflateFixedAt(t, 12)},
		{"tail not removed", nil, append(bytes.Clone(fixed), deflateTail...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := walkDeflate(tc.dict, tc.p); !errors.Is(err, errWalk) {
				t.Fatalf("walked with %v, want an error", err)
			}
		})
	}
}

// TestWalkDeflateStoredAfterHuffman walks a dynamic block whose end-of-block code is 1 bit
// long, so that decoding reads ahead into the stored block after it, then a fixed block, at
// every bit alignment.
func TestWalkDeflateStoredAfterHuffman(t *testing.T) {
	for n := 1; n <= 8; n++ {
		var bw bitWriter
		// A dynamic block whose codes are 'a' (0) and end-of-block (1), and one distance
		// code, all 1 bit long; the code length code has 1 (0) and 18 (1), 1 bit long.
		bw.write(0, 1)
		bw.write(blockDynamic, 2)
		bw.write(0, 5)  // 257 literal/length codes
		bw.write(0, 5)  // 1 distance code
		bw.write(14, 4) // 18 code length code lengths
		for _, sym := range codeOrder[:18] {
			l := 0
			if sym == 1 || sym == 18 {
				l = 1
			}
			bw.write(l, 3)
		}
		for _, zeros := range []int{97, 0, 138, 20, 0, 0} { // 'a' is 97; 256 and distance 0 are 1
			if zeros == 0 {
				bw.writeCode(0, 1)
				continue
			}
			bw.writeCode(1, 1)
			bw.write(zeros-11, 7)
		}
		for range n {
			bw.writeCode(0, 1)
		}
		bw.writeCode(1, 1)
		bw.write(0, 3) // a stored block
		bw.flush()
		bw.p = append(bw.p, 5, 0, 0xfa, 0xff)
		bw.p = append(bw.p, "hello"...)
		bw.write(0, 1)
		bw.write(blockFixed, 2)
		bw.fixedLiteral('!')
		bw.fixedLiteral(256)
		bw.write(0, 3)
		bw.flush()
		w, err := walkDeflate(nil, bw.p)
		if want := strings.Repeat("a", n) + "hello!"; err != nil || string(w.out) != want || w.blocks != [3]int{1, 1, 1} {
			t.Errorf("%d a's: walked %q (blocks %v), %v; want %q", n, w.out, w.blocks, err, want)
		}
	}
}

// deflateFixedAt is a fixed block with the literal 'x' and then a match of 3 bytes at
// distance d, sync-flushed without the tail.
func deflateFixedAt(t *testing.T, d int) []byte {
	t.Helper()
	var bw bitWriter
	bw.write(0, 1)
	bw.write(blockFixed, 2)
	bw.fixedLiteral('x')
	bw.fixedMatch(3, d)
	bw.fixedLiteral(256)
	bw.write(0, 3)
	bw.flush()
	return bw.p
}

// TestDeflateFixed checks the suite's own encoder: compress/flate and the walker both inflate
// its output to the input, no back-reference reaches past the window, and with the window
// reach seeded one reaches exactly to it, within a message and from one into the last.
func TestDeflateFixed(t *testing.T) {
	corpus := []byte(jsonCorpus())
	for _, bits := range []int{8, 9, 10, 11, 12, 13, 14} {
		window := 1 << bits
		for _, tc := range []struct {
			name      string
			dictLen   int
			msgLen    int
			wantReach bool
		}{
			{"short, no dictionary", 0, 16, false},
			{"longer than the window", 0, 3*window + 100, true},
			{"after a full window", window, 16, true},
			{"after a short dictionary", window / 2, window, true},
		} {
			dict := bytes.Clone(corpus[1000 : 1000+tc.dictLen])
			msg := bytes.Clone(corpus[5000 : 5000+tc.msgLen])
			seeded := seedWindowReach(dict, msg, window)
			if seeded > 0 != tc.wantReach {
				t.Errorf("%d bits, %s: %d copies seeded", bits, tc.name, seeded)
			}
			p := deflateFixed(dict, msg, window)
			w, err := walkDeflate(dict, p)
			if err != nil || !bytes.Equal(w.out[len(dict):], msg) || w.blocks != [3]int{0, 1, 0} {
				t.Fatalf("%d bits, %s: walked %d bytes (blocks %v), %v", bits, tc.name, len(w.out)-len(dict), w.blocks, err)
			}
			if out, err := inflate(dict, p); err != nil || !bytes.Equal(out, msg) {
				t.Fatalf("%d bits, %s: compress/flate inflated %d bytes, %v", bits, tc.name, len(out), err)
			}
			if w.maxDist > window || tc.wantReach && w.maxDist != window {
				t.Errorf("%d bits, %s: longest distance %d, want %d at most, and exactly when seeded", bits, tc.name, w.maxDist, window)
			}
		}
	}
}

// TestDeflaterContext checks the suite's compressor over several messages: with context
// takeover each message refers into the last ones and inflates only with them as the
// dictionary; without it each inflates on its own.
func TestDeflaterContext(t *testing.T) {
	msg := []byte(jsonCorpus()[:300])
	for _, s := range []deflateSide{{false, 15}, {true, 15}, {false, 9}, {true, 9}} {
		d := newDeflater(s)
		var sent history
		sent.size = s.window()
		for i := range 3 {
			dict := sent.dict(s)
			p := d.compress(msg)
			out, err := inflate(dict, p)
			if err != nil || !bytes.Equal(out, msg) {
				t.Fatalf("%v, message %d: inflated %d bytes, %v", s, i, len(out), err)
			}
			_, errAlone := inflate(nil, p)
			if i > 0 && !s.noContext && errAlone == nil {
				t.Errorf("%v, message %d: inflates without the last messages", s, i)
			}
			sent.add(msg)
		}
	}
}
