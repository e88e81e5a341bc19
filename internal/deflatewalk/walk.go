// Package deflatewalk is a DEFLATE decoder of the tests' own (RFC 1951, after zlib's puff.c),
// slow and simple, that reports what a compressor cannot be trusted to report about itself:
// how far back its back-references reach, and which kinds of block it wrote. Package deflate's
// tests and internal/conformance's permessage-deflate cases check windows with it.
package deflatewalk

import (
	"errors"
	"io"
)

// Stats is what Walk saw.
type Stats struct {
	MaxDist int    // the longest back-reference, 0 when there is none
	Blocks  [3]int // blocks by type: stored (empty ones, flushes, not counted), fixed Huffman, dynamic Huffman
}

var (
	// ErrCode is an invalid Huffman code.
	ErrCode = errors.New("deflatewalk: invalid Huffman code")
	// ErrData is an invalid block.
	ErrData = errors.New("deflatewalk: invalid block")
	// ErrFar is a back-reference (distance) before the start of the dictionary.
	ErrFar = errors.New("deflatewalk: back-reference distance before the start of the window")
)

// Walk decodes data, a DEFLATE stream that must end with a final block, primed with dict,
// and returns what it inflates to (without dict).
func Walk(data, dict []byte) ([]byte, Stats, error) {
	w := &walker{in: data, out: append([]byte(nil), dict...)}
	for final := 0; final == 0; {
		var err error
		if final, err = w.bits(1); err != nil {
			return nil, w.st, err
		}
		typ, err := w.bits(2)
		before := len(w.out)
		switch {
		case err != nil:
		case typ == 0:
			err = w.stored()
		case typ == 1:
			err = w.codes(fixedLit, fixedDist)
		case typ == 2:
			err = w.dynamic()
		default:
			err = ErrData
		}
		if err != nil {
			return nil, w.st, err
		}
		if typ != 0 || len(w.out) > before {
			w.st.Blocks[typ]++
		}
	}
	return w.out[len(dict):], w.st, nil
}

type walker struct {
	in   []byte
	pos  int
	bit  uint32 // bits read and not used, the next in the lowest
	nbit uint
	out  []byte // the dictionary, then what was inflated
	st   Stats
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
		return ErrData
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
			return nil, ErrCode // more codes than the lengths allow
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
	return 0, ErrCode
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
			return ErrData
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
			return ErrData
		}
		if extra, err = w.bits(distExtra[dsym]); err != nil {
			return err
		}
		d := distBase[dsym] + extra
		if d > len(w.out) {
			return ErrFar
		}
		w.st.MaxDist = max(w.st.MaxDist, d)
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
				return ErrData
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
			return ErrData
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
