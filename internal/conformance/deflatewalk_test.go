package conformance

import (
	"errors"
	"fmt"
)

// This file is a DEFLATE (RFC 1951) token walker: an inflater of its own, written for the
// suite, that decodes stored, fixed-Huffman and dynamic-Huffman blocks and reports the
// longest back-reference a stream uses. compress/flate inflates what the testee sends; the
// walker checks what compress/flate cannot: that no back-reference reaches further than the
// window agreed for the sender (RFC 7692 section 7.1.2), even when the data it would reach
// is there.

// Length and distance codes (RFC 1951 section 3.2.5): base values and extra bits.
var (
	lengthBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// Block types, the BTYPE field.
const (
	blockStored = iota
	blockFixed
	blockDynamic
)

// walk is what walkDeflate found in a stream.
type walk struct {
	out     []byte // the dictionary, then the inflated data
	maxDist int    // the longest back-reference, 0 when there is none
	blocks  [3]int // blocks seen, by type; an empty stored block (a flush) is not counted
}

var errWalk = errors.New("deflate walk")

// walkDeflate inflates a permessage-deflate message: p with the 0x00 0x00 0xff 0xff that the
// sender removed put back (RFC 7692 section 7.2.2), after dict, the window the agreement lets
// the sender refer to. It stops after a final block, or after a block that ends the input at
// a byte boundary; any other end is an error, as is a back-reference before the dictionary.
func walkDeflate(dict, p []byte) (walk, error) {
	w := walk{out: append([]byte(nil), dict...)}
	r := &bitReader{p: append(p[:len(p):len(p)], 0, 0, 0xff, 0xff)}
	for {
		final, err := r.bits(1)
		if err != nil {
			return w, err
		}
		typ, err := r.bits(2)
		if err != nil {
			return w, err
		}
		before := len(w.out)
		switch typ {
		case blockStored:
			err = w.stored(r)
		case blockFixed:
			err = w.codes(r, &fixedLit, &fixedDist)
		case blockDynamic:
			var lit, dist huffman
			if err = readDynamic(r, &lit, &dist); err == nil {
				err = w.codes(r, &lit, &dist)
			}
		default:
			err = fmt.Errorf("%w: block type 3", errWalk)
		}
		if err != nil {
			return w, err
		}
		if typ != blockStored || len(w.out) > before {
			w.blocks[typ]++
		}
		if final == 1 || r.n == 0 && r.pos == len(r.p) {
			return w, nil
		}
	}
}

// bitReader reads the bits of a DEFLATE stream, least significant first.
type bitReader struct {
	p   []byte
	pos int    // next byte of p
	buf uint32 // bits read from p and not used yet
	n   uint   // how many
}

// fill reads bytes until n bits are held, and reports whether the input had them.
func (r *bitReader) fill(n uint) bool {
	for r.n < n {
		if r.pos == len(r.p) {
			return false
		}
		r.buf |= uint32(r.p[r.pos]) << r.n
		r.pos++
		r.n += 8
	}
	return true
}

func (r *bitReader) bits(n uint) (int, error) {
	if !r.fill(n) {
		return 0, fmt.Errorf("%w: input ends inside a block", errWalk)
	}
	v := int(r.buf & (1<<n - 1))
	r.buf >>= n
	r.n -= n
	return v, nil
}

// stored copies a stored block (RFC 1951 section 3.2.4).
func (w *walk) stored(r *bitReader) error {
	// The rest of the current byte is padding; whole bytes read ahead go back.
	r.pos -= int(r.n / 8)
	r.buf, r.n = 0, 0
	if len(r.p)-r.pos < 4 {
		return fmt.Errorf("%w: stored block header cut", errWalk)
	}
	n := int(r.p[r.pos]) | int(r.p[r.pos+1])<<8
	if nn := int(r.p[r.pos+2]) | int(r.p[r.pos+3])<<8; n != ^nn&0xffff {
		return fmt.Errorf("%w: stored block LEN %d, NLEN %d", errWalk, n, nn)
	}
	r.pos += 4
	if len(r.p)-r.pos < n {
		return fmt.Errorf("%w: stored block of %d bytes cut", errWalk, n)
	}
	w.out = append(w.out, r.p[r.pos:r.pos+n]...)
	r.pos += n
	return nil
}

// huffman is a canonical Huffman code as RFC 1951 section 3.2.2 builds it: how many codes
// have each length, the symbols ordered by code, and a table that decodes the codes of up to
// fastBits bits in one look-up.
type huffman struct {
	count  [16]int
	symbol []int
	fast   [1 << fastBits]uint16 // symbol<<4 | length, indexed by the next fastBits bits; 0: longer code
}

const fastBits = 9

// build makes the code for the given code lengths (0: symbol unused). Codes that are
// over-subscribed are an error; incomplete ones are allowed, as zlib allows them.
func (h *huffman) build(lengths []int) error {
	h.count = [16]int{}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			return fmt.Errorf("%w: over-subscribed code", errWalk)
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	h.symbol = make([]int, offs[15]+h.count[15])
	for s, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = s
			offs[l]++
		}
	}
	// The table: each short code, bit-reversed as it arrives, fills every entry that ends
	// with it.
	h.fast = [1 << fastBits]uint16{}
	code, index := 0, 0
	for l := 1; l <= fastBits; l++ {
		for range h.count[l] {
			rev := 0
			for i := range l {
				rev |= (code >> i & 1) << (l - 1 - i)
			}
			for e := rev; e < 1<<fastBits; e += 1 << l {
				h.fast[e] = uint16(h.symbol[index]<<4 | l)
			}
			code++
			index++
		}
		code <<= 1
	}
	return nil
}

// decode reads one symbol: from the table when its code is short enough and the input holds
// fastBits more bits, else a bit at a time (codes are packed most significant bit first).
func (h *huffman) decode(r *bitReader) (int, error) {
	if r.fill(fastBits) {
		if e := h.fast[r.buf&(1<<fastBits-1)]; e != 0 {
			r.buf >>= e & 15
			r.n -= uint(e & 15)
			return int(e >> 4), nil
		}
	}
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		if n := h.count[l]; code-n < first {
			return h.symbol[index+code-first], nil
		}
		index += h.count[l]
		first = (first + h.count[l]) << 1
		code <<= 1
	}
	return 0, fmt.Errorf("%w: invalid code", errWalk)
}

// The fixed codes (RFC 1951 section 3.2.6).
var fixedLit, fixedDist = func() (lit, dist huffman) {
	var l [288]int
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	d := make([]int, 30)
	for i := range d {
		d[i] = 5
	}
	if lit.build(l[:]) != nil || dist.build(d) != nil {
		panic("fixed codes")
	}
	return lit, dist
}()

// codeOrder is the order of the code length code's lengths in a dynamic block header.
var codeOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// readDynamic reads a dynamic block's codes (RFC 1951 section 3.2.7).
func readDynamic(r *bitReader, lit, dist *huffman) error {
	var hdr [3]int
	for i, n := range []uint{5, 5, 4} {
		v, err := r.bits(n)
		if err != nil {
			return err
		}
		hdr[i] = v
	}
	nlit, ndist, nclen := hdr[0]+257, hdr[1]+1, hdr[2]+4
	if nlit > 286 || ndist > 30 {
		return fmt.Errorf("%w: %d literal/length and %d distance codes", errWalk, nlit, ndist)
	}
	var clen [19]int
	for i := range nclen {
		v, err := r.bits(3)
		if err != nil {
			return err
		}
		clen[codeOrder[i]] = v
	}
	var lencode huffman
	if err := lencode.build(clen[:]); err != nil {
		return err
	}
	lengths := make([]int, 0, nlit+ndist)
	for len(lengths) < nlit+ndist {
		sym, err := lencode.decode(r)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths = append(lengths, sym)
			continue
		}
		val, repeat := 0, 0
		switch sym {
		case 16:
			if len(lengths) == 0 {
				return fmt.Errorf("%w: repeat with no length before it", errWalk)
			}
			val = lengths[len(lengths)-1]
			repeat, err = r.bits(2)
			repeat += 3
		case 17:
			repeat, err = r.bits(3)
			repeat += 3
		default:
			repeat, err = r.bits(7)
			repeat += 11
		}
		if err != nil {
			return err
		}
		if len(lengths)+repeat > nlit+ndist {
			return fmt.Errorf("%w: code lengths overflow", errWalk)
		}
		for range repeat {
			lengths = append(lengths, val)
		}
	}
	if lengths[256] == 0 {
		return fmt.Errorf("%w: no end-of-block code", errWalk)
	}
	if err := lit.build(lengths[:nlit]); err != nil {
		return err
	}
	return dist.build(lengths[nlit:])
}

// codes inflates the symbols of a Huffman block up to its end-of-block code.
func (w *walk) codes(r *bitReader, lit, dist *huffman) error {
	for {
		sym, err := lit.decode(r)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			w.out = append(w.out, byte(sym))
			continue
		case sym == 256:
			return nil
		case sym > 285:
			return fmt.Errorf("%w: length symbol %d", errWalk, sym)
		}
		sym -= 257
		extra, err := r.bits(lengthExtra[sym])
		if err != nil {
			return err
		}
		n := lengthBase[sym] + extra
		dsym, err := dist.decode(r)
		if err != nil {
			return err
		}
		if dsym > 29 {
			return fmt.Errorf("%w: distance symbol %d", errWalk, dsym)
		}
		extra, err = r.bits(distExtra[dsym])
		if err != nil {
			return err
		}
		d := distBase[dsym] + extra
		w.maxDist = max(w.maxDist, d)
		if d > len(w.out) {
			return fmt.Errorf("%w: distance %d with %d bytes behind", errWalk, d, len(w.out))
		}
		for n > 0 { // in pieces of at most d bytes: a copy may overlap its own output
			from := len(w.out) - d
			k := min(n, d)
			w.out = append(w.out, w.out[from:from+k]...)
			n -= k
		}
	}
}
