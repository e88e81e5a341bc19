package conformance

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// This file is the suite's side of permessage-deflate (RFC 7692), independent of the testee's:
// compress/flate inflates, with the peer's window as its dictionary when the agreement lets
// the peer keep its context; compress/flate compresses for a 15-bit window, and a DEFLATE
// encoder of the suite's own compresses for smaller ones, since compress/flate cannot be
// told to refer less than 32 KiB back. That encoder writes one fixed-Huffman block per
// message whose back-references reach exactly as far as the window allows, wherever the
// data repeats at that distance (seedWindowReach makes sure it does), and never further.

// deflateTail is what a sender removes from the end of each compressed message (section
// 7.2.1) and the receiver puts back: an empty stored block, as a sync flush writes it.
var deflateTail = []byte{0, 0, 0xff, 0xff}

// deflateSide is how one end of a connection compresses, under the agreement.
type deflateSide struct {
	noContext bool // each message on its own (<role>_no_context_takeover)
	bits      int  // the window, 8 to 15 (<role>_max_window_bits)
}

func (s deflateSide) window() int { return 1 << s.bits }

func (s deflateSide) String() string {
	ctx := "takeover"
	if s.noContext {
		ctx = "no takeover"
	}
	return fmt.Sprintf("%s, %d-bit window", ctx, s.bits)
}

// history holds the last bytes of the messages one end sent: the window the next message
// may refer to when that end keeps its context.
type history struct {
	size int // the window
	buf  []byte
}

// dict returns the window for the next message: empty when the end keeps no context.
func (h *history) dict(s deflateSide) []byte {
	if s.noContext {
		return nil
	}
	return h.buf
}

func (h *history) add(p []byte) {
	h.buf = append(h.buf, p...)
	if n := len(h.buf) - h.size; n > 0 {
		h.buf = append(h.buf[:0], h.buf[n:]...)
	}
}

// suiteLevel is the compress/flate level of the suite's compressor: the cheapest of the
// levels that search hash chains (level 1 is a different, single-probe matcher, the one the
// testee uses by default).
const suiteLevel = 2

// deflater is the suite's compressor for one connection.
type deflater struct {
	side deflateSide
	hist history
	fw   *flate.Writer // for a 15-bit window; kept between messages with context takeover
	out  bytes.Buffer
}

// flateWriters and flateReaders keep compress/flate's compressors (about 1 MiB each) and
// decompressors from one case to the next: allocating them afresh for each of hundreds of
// connections is most of what the cases cost under -race.
var (
	flateWriters = sync.Pool{New: func() any {
		fw, _ := flate.NewWriter(nil, suiteLevel)
		return fw
	}}
	flateReaders = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}
)

func newDeflater(s deflateSide) *deflater {
	return &deflater{side: s, hist: history{size: s.window()}}
}

// compress returns msg compressed as one permessage-deflate message, without the tail.
func (d *deflater) compress(msg []byte) []byte {
	var p []byte
	if d.side.bits == 15 {
		if d.fw == nil {
			d.fw = flateWriters.Get().(*flate.Writer)
			d.fw.Reset(&d.out)
		} else if d.side.noContext {
			d.fw.Reset(&d.out)
		}
		d.fw.Write(msg)
		d.fw.Flush()
		p = bytes.Clone(bytes.TrimSuffix(d.out.Bytes(), deflateTail))
		d.out.Reset()
	} else {
		p = deflateFixed(d.hist.dict(d.side), msg, d.side.window())
	}
	d.hist.add(msg)
	return p
}

// release gives the compressor back for the next case.
func (d *deflater) release() {
	if d.fw != nil {
		flateWriters.Put(d.fw)
		d.fw = nil
	}
}

// seedWindowReach makes msg, about to be sent after the bytes in dict, repeat itself at
// exactly the distance window: the 8 bytes at every multiple of the window (counted from the
// start of dict) from the first one in msg on are copies of the 8 bytes one window earlier.
// The copies let a compressor refer as far back as the window allows; ASCII stays ASCII. It
// returns how many copies of 3 bytes or more it made.
func seedWindowReach(dict, msg []byte, window int) int {
	all := append(bytes.Clone(dict), msg...)
	n := 0
	for q := max(window, (len(dict)+window-1)/window*window); q < len(all); q += window {
		if copy(all[q:min(q+8, len(all))], all[q-window:]) >= 3 {
			n++
		}
	}
	copy(msg, all[len(dict):])
	return n
}

// deflateFixed compresses msg, sent after dict, into one fixed-Huffman block followed by the
// sync flush's empty stored block, whose last 4 bytes (deflateTail) it leaves out. A match
// at exactly the distance window is taken wherever there is one; otherwise the last earlier
// occurrence of the next 3 bytes, if it is within the window.
func deflateFixed(dict, msg []byte, window int) []byte {
	all := append(bytes.Clone(dict[max(0, len(dict)-window):]), msg...)
	var bw bitWriter
	bw.write(0, 1) // BFINAL: the message does not end the stream
	bw.write(blockFixed, 2)
	const hashBits = 12
	head := make([]int32, 1<<hashBits) // position+1 of the last 3 bytes with this hash
	hash := func(i int) int {
		return int((uint32(all[i])<<16 | uint32(all[i+1])<<8 | uint32(all[i+2])) * 2654435761 >> (32 - hashBits))
	}
	matchLen := func(i, j int) int {
		n := 0
		for n < 258 && i+n < len(all) && all[j+n] == all[i+n] {
			n++
		}
		return n
	}
	start := len(all) - len(msg)
	for i := 0; i < start && i+2 < len(all); i++ {
		head[hash(i)] = int32(i + 1)
	}
	// reach reports whether a match of 3 bytes or more at exactly the window starts at k.
	reach := func(k int) bool {
		return k >= window && k+2 < len(all) && all[k] == all[k-window] && all[k+1] == all[k+1-window] && all[k+2] == all[k+2-window]
	}
	for i := start; i < len(all); {
		n, d := 0, 0
		if i+2 < len(all) {
			if reach(i) {
				n, d = matchLen(i, i-window), window
			}
			h := hash(i)
			if j := int(head[h]) - 1; n < 3 && j >= 0 && i-j <= window {
				n, d = matchLen(i, j), i-j
				// A shorter match ends where one at the full window starts, so that the
				// stream refers as far back as allowed wherever the data lets it.
				for k := i + 1; k < i+n; k++ {
					if reach(k) {
						n = k - i
						break
					}
				}
			}
			head[h] = int32(i + 1)
		}
		if n < 3 {
			bw.fixedLiteral(int(all[i]))
			i++
			continue
		}
		bw.fixedMatch(n, d)
		for k := i + 1; k < i+n && k+2 < len(all); k++ {
			head[hash(k)] = int32(k + 1)
		}
		i += n
	}
	bw.fixedLiteral(256)
	bw.write(0, 3) // the sync flush: an empty stored block, BFINAL 0
	bw.flush()
	return bw.p // LEN and NLEN (deflateTail) left out
}

// bitWriter writes the bits of a DEFLATE stream, least significant first.
type bitWriter struct {
	p   []byte
	buf uint64
	n   uint
}

func (w *bitWriter) write(v int, n uint) {
	w.buf |= uint64(v) << w.n
	w.n += n
	for w.n >= 8 {
		w.p = append(w.p, byte(w.buf))
		w.buf >>= 8
		w.n -= 8
	}
}

// writeCode writes a Huffman code of n bits, most significant bit first.
func (w *bitWriter) writeCode(code int, n uint) {
	rev := 0
	for range n {
		rev, code = rev<<1|code&1, code>>1
	}
	w.write(rev, n)
}

func (w *bitWriter) flush() {
	if w.n > 0 {
		w.write(0, 8-w.n)
	}
}

// fixedLiteral writes a literal/length symbol with the fixed code (RFC 1951 section 3.2.6).
func (w *bitWriter) fixedLiteral(sym int) {
	switch {
	case sym < 144:
		w.writeCode(0x30+sym, 8)
	case sym < 256:
		w.writeCode(0x190+sym-144, 9)
	case sym < 280:
		w.writeCode(sym-256, 7)
	default:
		w.writeCode(0xc0+sym-280, 8)
	}
}

// fixedMatch writes a length of 3 to 258 at distance d of 1 to 32768.
func (w *bitWriter) fixedMatch(n, d int) {
	s := len(lengthBase) - 1
	for lengthBase[s] > n {
		s--
	}
	w.fixedLiteral(257 + s)
	w.write(n-lengthBase[s], lengthExtra[s])
	s = len(distBase) - 1
	for distBase[s] > d {
		s--
	}
	w.writeCode(s, 5)
	w.write(d-distBase[s], distExtra[s])
}

// inflate decompresses one permessage-deflate message p with compress/flate, after dict.
// compress/flate ends a stream that has no final block with io.ErrUnexpectedEOF once the
// input runs out at a block boundary; a stream cut inside a block ends the same way, and is
// caught by the walker, which runs on every message too.
func inflate(dict, p []byte) ([]byte, error) {
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	r.(flate.Resetter).Reset(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)), dict)
	out, err := io.ReadAll(r)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	return out, err
}
