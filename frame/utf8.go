package frame

import "encoding/binary"

// UTF8 is an incremental UTF-8 validator for one text message. RFC 6455 requires text to be
// UTF-8 and a receiver should close with 1007 as soon as a bad byte arrives, so UTF8 checks
// fragments as they come, even when a fragment ends inside a multi-byte character. The zero
// value is ready for a new text. It holds no references, so it can live inside a connection
// without allocating.
type UTF8 struct {
	state uint8 // DFA state (a shift count into utf8DFA rows); 0 is the character boundary
}

// The validator is a shift-based DFA: utf8DFA[b] packs, for every state s, the state reached
// from s on byte b in the 6 bits starting at bit s. Stepping is then one table load (that does
// not depend on the state) and one shift, so the dependency carried from byte to byte is just
// the shift. States are named by their shift count.
const (
	stAccept = 0 * 6 // at a character boundary; zero so the zero UTF8 is ready
	stReject = 1 * 6 // invalid; every row maps it to itself, so it is sticky
	stCont1  = 2 * 6 // need 1 more byte in 80..BF
	stCont2  = 3 * 6 // need 2 more bytes in 80..BF
	stCont3  = 4 * 6 // need 3 more bytes in 80..BF
	stE0     = 5 * 6 // after E0: A0..BF then 1 more (else overlong)
	stED     = 6 * 6 // after ED: 80..9F then 1 more (else a surrogate)
	stF0     = 7 * 6 // after F0: 90..BF then 2 more (else overlong)
	stF4     = 8 * 6 // after F4: 80..8F then 2 more (else above U+10FFFF)
)

// utf8DFA is built once from the first-byte ranges of RFC 3629 section 4 (the same ones
// unicode/utf8 enforces), so the accepted language matches utf8.Valid exactly.
var utf8DFA = func() (t [256]uint64) {
	next := func(s int, b byte) int {
		switch s {
		case stAccept:
			switch {
			case b < 0x80:
				return stAccept
			case b >= 0xC2 && b <= 0xDF:
				return stCont1
			case b == 0xE0:
				return stE0
			case b == 0xED:
				return stED
			case b >= 0xE1 && b <= 0xEF:
				return stCont2
			case b == 0xF0:
				return stF0
			case b == 0xF4:
				return stF4
			case b >= 0xF1 && b <= 0xF3:
				return stCont3
			}
			return stReject // continuation bytes, C0, C1, F5..FF
		case stCont1:
			if b >= 0x80 && b <= 0xBF {
				return stAccept
			}
		case stCont2:
			if b >= 0x80 && b <= 0xBF {
				return stCont1
			}
		case stCont3:
			if b >= 0x80 && b <= 0xBF {
				return stCont2
			}
		case stE0:
			if b >= 0xA0 && b <= 0xBF {
				return stCont1
			}
		case stED:
			if b >= 0x80 && b <= 0x9F {
				return stCont1
			}
		case stF0:
			if b >= 0x90 && b <= 0xBF {
				return stCont2
			}
		case stF4:
			if b >= 0x80 && b <= 0x8F {
				return stCont2
			}
		}
		return stReject
	}
	for b := range t {
		for s := stAccept; s <= stF4; s += 6 {
			t[b] |= uint64(next(s, byte(b))) << s
		}
	}
	return t
}()

// asciiMask has the high bit of each byte of a uint64 set; a word ANDed with it is zero
// exactly when all 8 bytes are ASCII.
const asciiMask = 0x8080808080808080

// Write validates p as the next bytes of the text; fragments may split a character anywhere.
// It returns len(p), nil while the text so far is valid or a valid prefix of valid text. At
// the first byte that no valid text could continue with, it returns the number of bytes of p
// before that byte and ErrInvalidUTF8, so the caller can fail the connection at once. Once
// invalid, every later Write returns 0, ErrInvalidUTF8 until Reset. Write never allocates;
// it implements io.Writer so a UTF8 can sit in an io.MultiWriter next to a payload sink.
func (u *UTF8) Write(p []byte) (int, error) {
	st := uint64(u.state)
	if st == stReject {
		return 0, ErrInvalidUTF8
	}
	q := p // the unchecked rest; advancing a slice lets the compiler drop bounds checks
	for len(q) >= 8 {
		if st == stAccept && binary.LittleEndian.Uint64(q)&asciiMask == 0 {
			// At a boundary ASCII cannot go wrong, so skip it a word at a time; after one
			// ASCII word more are likely, so try four words per step while they last.
			q = q[8:]
			for len(q) >= 32 && (binary.LittleEndian.Uint64(q)|binary.LittleEndian.Uint64(q[8:])|
				binary.LittleEndian.Uint64(q[16:])|binary.LittleEndian.Uint64(q[24:]))&asciiMask == 0 {
				q = q[32:]
			}
			continue
		}
		// Step 8 bytes without a check per byte; reject is sticky, so one check after them
		// suffices and only the error path looks again for the exact byte.
		w := binary.LittleEndian.Uint64(q)
		s := utf8DFA[byte(w)] >> (st & 63)
		s = utf8DFA[byte(w>>8)] >> (s & 63)
		s = utf8DFA[byte(w>>16)] >> (s & 63)
		s = utf8DFA[byte(w>>24)] >> (s & 63)
		s = utf8DFA[byte(w>>32)] >> (s & 63)
		s = utf8DFA[byte(w>>40)] >> (s & 63)
		s = utf8DFA[byte(w>>48)] >> (s & 63)
		s = utf8DFA[byte(w>>56)] >> (s & 63)
		if s&63 == stReject {
			return u.fail(p, len(p)-len(q), st)
		}
		st = s & 63
		q = q[8:]
	}
	tail := st // under 8 bytes left: step them, then check once as above
	for _, b := range q {
		st = utf8DFA[b] >> (st & 63) & 63
	}
	if st == stReject {
		return u.fail(p, len(p)-len(q), tail)
	}
	u.state = uint8(st)
	return len(p), nil
}

// fail rescans p from i, where the state was st, to find the byte that made the text
// invalid. Only the error path pays for this second look.
func (u *UTF8) fail(p []byte, i int, st uint64) (int, error) {
	u.state = stReject
	for ; i < len(p); i++ {
		st = utf8DFA[p[i]] >> (st & 63) & 63
		if st == stReject {
			break
		}
	}
	return i, ErrInvalidUTF8
}

// Finish reports whether the whole text was valid: ErrInvalidUTF8 if a Write found an
// invalid byte or the text ends inside a multi-byte character, nil otherwise. It is called
// on the final fragment, because only then is a truncated character an error. It does not
// reset u.
func (u *UTF8) Finish() error {
	if u.state != stAccept {
		return ErrInvalidUTF8
	}
	return nil
}

// Reset makes u ready for a new text, forgetting any error or partial character.
func (u *UTF8) Reset() { u.state = stAccept }

// ValidUTF8 reports whether p is complete, valid UTF-8, giving the same answer as
// utf8.Valid. It runs the same state machine as UTF8, so an unfragmented text and a
// fragmented one are judged alike.
func ValidUTF8(p []byte) bool {
	var u UTF8
	if _, err := u.Write(p); err != nil {
		return false
	}
	return u.Finish() == nil
}
