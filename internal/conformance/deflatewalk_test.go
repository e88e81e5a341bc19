package conformance

import (
	"errors"
	"fmt"

	"github.com/ecows/ecows/internal/deflatewalk"
)

// The suite checks with internal/deflatewalk, a DEFLATE decoder of its own: compress/flate
// inflates what the testee sends; the walker checks what compress/flate cannot, that no
// back-reference reaches further than the window agreed for the sender (RFC 7692 section
// 7.1.2), even when the data it would reach is there. The tables below are the suite's
// encoder's (deflateenc_test.go).

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

// codeOrder is the order of the code length code's lengths in a dynamic block header.
var codeOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// walk is what walkDeflate found in a stream.
type walk struct {
	out     []byte // the dictionary, then the inflated data
	maxDist int    // the longest back-reference, 0 when there is none
	blocks  [3]int // blocks seen, by type; an empty stored block (a flush) is not counted
}

var errWalk = errors.New("deflate walk")

// end9 is what a receiver appends to a permessage-deflate message (RFC 7692 section 7.2.2),
// followed by an empty final stored block, so that the stream ends where the message does.
var end9 = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// walkDeflate inflates a permessage-deflate message p after dict, the window the agreement
// lets the sender refer to. A back-reference before the dictionary is an error whose text
// says "distance".
func walkDeflate(dict, p []byte) (walk, error) {
	out, st, err := deflatewalk.Walk(append(p[:len(p):len(p)], end9...), dict)
	w := walk{out: append(append([]byte(nil), dict...), out...), maxDist: st.MaxDist, blocks: st.Blocks}
	if err != nil {
		return w, fmt.Errorf("%w: %w", errWalk, err)
	}
	return w, nil
}
