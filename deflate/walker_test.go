package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"io"
	"testing"
)

// A DEFLATE decoder of its own (RFC 1951, after zlib's puff.c), slow and simple, that reports
// what the package's engine cannot be trusted to report about itself: how far back its
// back-references reach, and which kinds of block it wrote.

// walkStats is what walkDeflate saw.
type walkStats struct {
	maxDist int    // the longest back-reference
	blocks  [3]int // blocks by type: stored, fixed Huffman, dynamic Huffman
}

var (
	errWalkCode = errors.New("walker: invalid Huffman code")
	errWalkData = errors.New("walker: invalid block")
	errWalkFar  = errors.New("walker: back-reference before the start of the window")
)

// walkDeflate decodes data, a DEFLATE stream that must end with a final block, primed with
// dict, and returns what it inflates to.
func walkDeflate(data, dict []byte) ([]byte, walkStats, error) {
	w := &walker{in: data, out: append([]byte(nil), dict...)}
	for final := 0; final == 0; {
		var err error
		if final, err = w.bits(1); err != nil {
			return nil, w.st, err
		}
		typ, err := w.bits(2)
		switch {
		case err != nil:
		case typ == 0:
			err = w.stored()
		case typ == 1:
			err = w.codes(fixedLit, fixedDist)
		case typ == 2:
			err = w.dynamic()
		default:
			err = errWalkData
		}
		if err != nil {
			return nil, w.st, err
		}
		w.st.blocks[typ]++
	}
	return w.out[len(dict):], w.st, nil
}

type walker struct {
	in   []byte
	pos  int
	bit  uint32 // bits read and not used, the next in the lowest
	nbit uint
	out  []byte // the dictionary, then what was inflated
	st   walkStats
}

func (w *walker) bits(n uint) (int, error) {
	for w.nbit < n {
		if w.pos == len(w.in) {
			return 0, io.ErrUnexpectedEOF
		}
		w.bit |= uint32(w.in[w.pos]) << w.nbit
		w.pos++
		w.nbit += 8
	}
	v := int(w.bit & (1<<n - 1))
	w.bit >>= n
	w.nbit -= n
	return v, nil
}

func (w *walker) stored() error {
	w.bit, w.nbit = 0, 0 // fewer than 8 bits are left: the rest of the current byte
	if len(w.in)-w.pos < 4 {
		return io.ErrUnexpectedEOF
	}
	n := int(w.in[w.pos]) | int(w.in[w.pos+1])<<8
	if n != ^(int(w.in[w.pos+2])|int(w.in[w.pos+3])<<8)&0xffff {
		return errWalkData
	}
	w.pos += 4
	if len(w.in)-w.pos < n {
		return io.ErrUnexpectedEOF
	}
	w.out = append(w.out, w.in[w.pos:w.pos+n]...)
	w.pos += n
	return nil
}

// huffman is a canonical Huffman code: how many codes of each length, and the symbols in the
// order of their codes.
type huffman struct {
	count  [16]int
	symbol []int
}

func newHuffman(lengths []int) (*huffman, error) {
	h := &huffman{symbol: make([]int, len(lengths))}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		if left = left<<1 - h.count[l]; left < 0 {
			return nil, errWalkCode // more codes than the lengths allow
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = sym
			offs[l]++
		}
	}
	return h, nil
}

func (w *walker) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := w.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := h.count[l]
		if code-count < first {
			return h.symbol[index+code-first], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errWalkCode
}

var (
	lengthBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	fixedLit, fixedDist = fixedCodes()
)

func fixedCodes() (*huffman, *huffman) {
	lengths := make([]int, 288+30)
	for i := range 288 {
		switch {
		case i < 144:
			lengths[i] = 8
		case i < 256:
			lengths[i] = 9
		case i < 280:
			lengths[i] = 7
		default:
			lengths[i] = 8
		}
	}
	for i := range 30 {
		lengths[288+i] = 5
	}
	lit, _ := newHuffman(lengths[:288])
	dist, _ := newHuffman(lengths[288:])
	return lit, dist
}

// codes decodes a Huffman block's symbols up to its end.
func (w *walker) codes(lit, dist *huffman) error {
	for {
		sym, err := w.decode(lit)
		switch {
		case err != nil:
			return err
		case sym < 256:
			w.out = append(w.out, byte(sym))
			continue
		case sym == 256:
			return nil
		case sym-257 >= len(lengthBase):
			return errWalkData
		}
		sym -= 257
		extra, err := w.bits(lengthExtra[sym])
		if err != nil {
			return err
		}
		n := lengthBase[sym] + extra
		dsym, err := w.decode(dist)
		if err != nil {
			return err
		}
		if dsym >= len(distBase) {
			return errWalkData
		}
		if extra, err = w.bits(distExtra[dsym]); err != nil {
			return err
		}
		d := distBase[dsym] + extra
		if d > len(w.out) {
			return errWalkFar
		}
		w.st.maxDist = max(w.st.maxDist, d)
		for range n {
			w.out = append(w.out, w.out[len(w.out)-d])
		}
	}
}

// order is the order in which a dynamic block sends the code lengths' code lengths.
var order = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (w *walker) dynamic() error {
	nlen, err1 := w.bits(5)
	ndist, err2 := w.bits(5)
	ncode, err3 := w.bits(4)
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	nlen, ndist, ncode = nlen+257, ndist+1, ncode+4
	var clen [19]int
	for _, i := range order[:ncode] {
		v, err := w.bits(3)
		if err != nil {
			return err
		}
		clen[i] = v
	}
	lencode, err := newHuffman(clen[:])
	if err != nil {
		return err
	}
	lengths := make([]int, 0, nlen+ndist)
	for len(lengths) < nlen+ndist {
		sym, err := w.decode(lencode)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths = append(lengths, sym)
			continue
		}
		l, extra, base := 0, uint(2), 3
		switch sym {
		case 16:
			if len(lengths) == 0 {
				return errWalkData
			}
			l = lengths[len(lengths)-1]
		case 17:
			extra = 3
		default:
			extra, base = 7, 11
		}
		rep, err := w.bits(extra)
		if err != nil {
			return err
		}
		if len(lengths)+base+rep > nlen+ndist {
			return errWalkData
		}
		for range base + rep {
			lengths = append(lengths, l)
		}
	}
	lit, err := newHuffman(lengths[:nlen])
	if err != nil {
		return err
	}
	dist, err := newHuffman(lengths[nlen:])
	if err != nil {
		return err
	}
	return w.codes(lit, dist)
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
		out, st, err := walkDeflate(append(b.Bytes(), end9[4:]...), tc.dict)
		switch {
		case err != nil || !bytes.Equal(out, tc.data):
			t.Errorf("%s: the walker inflates %d bytes of %d, %v", tc.name, len(out), len(tc.data), err)
		case tc.maxDist >= 0 && st.maxDist != tc.maxDist:
			t.Errorf("%s: the walker finds references up to %d back, want %d", tc.name, st.maxDist, tc.maxDist)
		case st.maxDist > 1<<MaxWindowBits || tc.maxDist < 0 && st.maxDist < 1<<14:
			t.Errorf("%s: the walker finds references up to %d back", tc.name, st.maxDist)
		}
		for i, n := range st.blocks {
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
		{"no dictionary", b.Bytes(), nil, errWalkFar},
		{"truncated", b.Bytes()[:b.Len()/2], dict, io.ErrUnexpectedEOF},
		{"reserved block type", []byte{0x07}, nil, errWalkData},
		{"stored length mismatch", []byte{0x01, 0x05, 0x00, 0x00, 0x00}, nil, errWalkData},
		{"no final block", []byte{0x00, 0x00, 0x00, 0xff, 0xff}, nil, io.ErrUnexpectedEOF},
	} {
		if _, _, err := walkDeflate(tc.data, tc.dict); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
