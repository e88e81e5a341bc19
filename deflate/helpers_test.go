package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// The helpers the package's tests share: payloads, one message through a Compressor or an
// Inflater, and compress/flate as the independent inflater.

// words make text that compresses as prose does: common words, repeated at every distance.
var words = strings.Fields(`the of and to a in that is was he for it with as his on be at by
	this had not are but from or have an they which one you were her all she there would their
	we him been has when who will more no if out so said what up its about into than them can
	only other new some could time these two may then do first any my now such like our over
	socket frame message window deflate context takeover server client header payload`)

// textBytes returns n bytes of pseudo-prose, the same for the same seed.
func textBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n+16)
	for len(b) < n {
		sep := byte(' ')
		if rng.IntN(12) == 0 {
			sep = '\n'
		}
		b = append(append(b, words[rng.IntN(len(words))]...), sep)
	}
	return b[:n]
}

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 'd', 'f'})
	b := make([]byte, n)
	_, _ = rng.Read(b) // never fails
	return b
}

// compress returns msg compressed by c as one message, tail removed.
func compress(t testing.TB, c *Compressor, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	c.Start(&b)
	if n, err := c.Write(msg); n != len(msg) || err != nil {
		t.Fatalf("Write: %d of %d bytes, %v", n, len(msg), err)
	}
	if err := c.Finish(); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return b.Bytes()
}

// feeding says how inflate hands a message to an Inflater: whole (rng nil), or in pieces of
// 1 to maxPiece bytes read into buffers of 1 to maxRead bytes, both drawn from rng.
type feeding struct {
	rng      *rand.Rand
	maxPiece int
	maxRead  int
}

// whole feeds a message in one piece and reads it into 4 KiB buffers.
var whole = feeding{maxRead: 4096}

// pieces returns a feeding in random pieces, from a seed.
func pieces(seed uint64, maxPiece, maxRead int) feeding {
	return feeding{rng: rand.New(rand.NewPCG(seed, 3)), maxPiece: maxPiece, maxRead: maxRead}
}

// errProtocol is inflate's own complaint: the Inflater broke its contract.
var errProtocol = errors.New("inflater broke its contract")

// inflate inflates payload as one message with z and returns what it inflates to, stopping at
// limit bytes (negative: none). Each piece is copied into a buffer that is overwritten once z
// reports it consumed, as a connection's read buffer is: an Inflater that read its input late
// would inflate garbage.
func inflate(z *Inflater, payload []byte, f feeding, limit int) ([]byte, error) {
	z.Begin()
	rest := payload
	var piece []byte
	feed := func() {
		for i := range piece {
			piece[i] = 0xa5
		}
		n := len(rest)
		if f.rng != nil {
			n = min(n, 1+f.rng.IntN(f.maxPiece))
		}
		piece = append(piece[:0], rest[:n]...)
		rest = rest[n:]
		z.Feed(piece, len(rest) == 0)
	}
	feed()
	var out []byte
	buf := make([]byte, f.maxRead)
	for range 1 << 24 {
		m := len(buf)
		if f.rng != nil {
			m = 1 + f.rng.IntN(m)
		}
		n, err := z.Read(buf[:m])
		out = append(out, buf[:n]...)
		if limit >= 0 && len(out) >= limit {
			return out[:limit], nil
		}
		switch {
		case err == nil:
			if n == 0 {
				return out, fmt.Errorf("%w: Read returned nothing and no error", errProtocol)
			}
		case err == io.EOF:
			return out, nil
		case err != ErrNeedInput:
			return out, err
		case n > 0 || len(rest) == 0 || !z.Consumed() || !z.Hungry():
			return out, fmt.Errorf("%w: ErrNeedInput with %d bytes read, %d to feed, consumed %t, hungry %t",
				errProtocol, n, len(rest), z.Consumed(), z.Hungry())
		default:
			feed()
		}
	}
	return out, fmt.Errorf("%w: no end after 2^24 reads", errProtocol)
}

// end9 is what RFC 7692 section 7.2.2 appends before inflating a message, followed by an
// empty final block: spelled out here so that the tests do not trust the package's own end.
var end9 = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// stdInflate inflates one message's payload with compress/flate, primed with dict.
func stdInflate(payload, dict []byte) ([]byte, error) {
	r := stdflate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(end9)), dict)
	defer r.Close()
	return io.ReadAll(r)
}

// lastBytes returns the last n bytes of b, or all of it.
func lastBytes(b []byte, n int) []byte { return b[max(len(b)-n, 0):] }

// modeLevels are the levels tried at each window: below MaxWindowBits the engine has one
// level of its own besides HuffmanOnly (see NewCompressor, and TestCompressorLevels), so the
// others would repeat BestSpeed's runs.
func modeLevels(bits int) []int {
	if bits < MaxWindowBits {
		return []int{HuffmanOnly, BestSpeed}
	}
	return []int{HuffmanOnly, BestSpeed, 5, BestCompress}
}

// eachMode runs f as a subtest for every window, every level tried at it and with and without
// context takeover.
func eachMode(t *testing.T, f func(t *testing.T, level, bits int, takeover bool)) {
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, level := range modeLevels(bits) {
			for _, takeover := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/bits%d/takeover=%t", levelName(level), bits, takeover), func(t *testing.T) {
					f(t, level, bits, takeover)
				})
			}
		}
	}
}

// levelName names a level in subtest names.
func levelName(level int) string {
	if level == HuffmanOnly {
		return "huffman"
	}
	return fmt.Sprintf("level%d", level)
}
