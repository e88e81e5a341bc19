package frame

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

var _ io.Writer = (*UTF8)(nil)

// refFirstBad is the reference for fail-fast reporting: the index of the first byte b such
// that data[:b+1] is not a prefix of any valid UTF-8 text, or -1 if there is none (data is
// valid, or valid but for a truncated last character). It walks runes with utf8.DecodeRune;
// at a decoding error it extends the sequence while utf8.FullRune says it is still an
// incomplete prefix of a valid encoding.
func refFirstBad(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		m := 0 // bytes from i that still form a proper prefix of a valid encoding
		for i+m < len(data) && !utf8.FullRune(data[i:i+m+1]) {
			m++
		}
		if i+m == len(data) {
			return -1 // truncated at the end: only Finish objects
		}
		return i + m
	}
	return -1
}

// refFirstBadBrute answers the same question as refFirstBad by another route: a prefix is
// extendable if appending up to three bytes from a small set of completions (covering every
// restricted second-byte range) makes it valid.
func refFirstBadBrute(data []byte) int {
	completions := [][]byte{{}}
	for _, second := range []byte{0x80, 0x90, 0xA0} {
		for n := 0; n <= 2; n++ {
			c := append([]byte{second}, bytes.Repeat([]byte{0x80}, n)...)
			completions = append(completions, c)
		}
	}
	extendable := func(p []byte) bool {
		for _, c := range completions {
			if utf8.Valid(append(p[:len(p):len(p)], c...)) {
				return true
			}
		}
		return false
	}
	for b := range data {
		if !extendable(data[:b+1]) {
			return b
		}
	}
	return -1
}

type utf8Case struct {
	name string
	in   string
	bad  int // index of the first invalid byte, -1 if none
}

var utf8Cases = []utf8Case{
	{"empty", "", -1},
	{"ascii", "hello, world", -1},
	{"U+0000", "\x00", -1},
	{"U+007F", "\x7F", -1},
	{"U+0080", "\xC2\x80", -1},
	{"U+07FF", "\xDF\xBF", -1},
	{"U+0800", "\xE0\xA0\x80", -1},
	{"U+D7FF", "\xED\x9F\xBF", -1},
	{"U+E000", "\xEE\x80\x80", -1},
	{"U+FFFD", "\xEF\xBF\xBD", -1},
	{"U+FFFF", "\xEF\xBF\xBF", -1},
	{"U+10000", "\xF0\x90\x80\x80", -1},
	{"U+10FFFF", "\xF4\x8F\xBF\xBF", -1},
	{"U+40000", "\xF1\x80\x80\x80", -1},
	{"mixed", "héllo wörld 日本語 🙂 κόσμε", -1},
	{"long mixed", strings.Repeat("abcdefgh日本語🙂é", 5), -1},

	// Overlong encodings.
	{"overlong C0", "\xC0\x80", 0},
	{"overlong C1", "\xC1\xBF", 0},
	{"overlong E0 80", "\xE0\x80\x80", 1},
	{"overlong E0 9F", "\xE0\x9F\xBF", 1},
	{"overlong F0 80", "\xF0\x80\x80\x80", 1},
	{"overlong F0 8F", "\xF0\x8F\xBF\xBF", 1},
	{"overlong F0 alone prefix", "\xF0\x8F", 1},

	// Surrogates U+D800..U+DFFF.
	{"surrogate D800", "\xED\xA0\x80", 1},
	{"surrogate DFFF", "\xED\xBF\xBF", 1},
	{"surrogate pair", "\xED\xA0\xBD\xED\xB8\x80", 1},
	{"surrogate prefix", "\xED\xA0", 1},

	// Above U+10FFFF.
	{"F4 90", "\xF4\x90\x80\x80", 1},
	{"F4 90 prefix", "\xF4\x90", 1},
	{"F4 BF", "\xF4\xBF\xBF\xBF", 1},
	{"F5", "\xF5\x80\x80\x80", 0},
	{"F7", "\xF7\xBF\xBF\xBF", 0},
	{"F8 5-byte", "\xF8\x88\x80\x80\x80", 0},
	{"FC 6-byte", "\xFC\x84\x80\x80\x80\x80", 0},
	{"FE", "\xFE", 0},
	{"FF", "\xFF", 0},

	// Stray continuation bytes.
	{"lone 80", "\x80", 0},
	{"lone BF", "\xBF", 0},
	{"after ascii", "a\x80", 1},
	{"after 2-byte", "\xC2\x80\x80", 2},
	{"after 3-byte", "\xE2\x82\xAC\xBF", 3},
	{"after 4-byte", "\xF0\x9F\x99\x82\x80", 4},

	// Truncated sequences: fine until something other than a continuation byte arrives.
	{"trunc C2", "\xC2", -1},
	{"trunc E0 A0", "\xE0\xA0", -1},
	{"trunc E2", "\xE2", -1},
	{"trunc F0 90 80", "\xF0\x90\x80", -1},
	{"trunc F4 8F BF", "\xF4\x8F\xBF", -1},
	{"trunc after text", "héllo \xE6\x97", -1},
	{"C2 then ascii", "\xC2A", 1},
	{"E0 A0 then ascii", "\xE0\xA0A", 2},
	{"F0 90 80 then ascii", "\xF0\x90\x80A", 3},
	{"lead then lead", "\xC2\xC2\x80", 1},
	{"E1 then lead", "\xE1\x80\xE1\x80\x80", 2},
	{"F1 then lead", "\xF1\x80\x80\xF1", 3},

	// Errors deep in the text, on either side of the 8-byte blocks Write steps through.
	{"bad at 7", "abcdefg\xFF", 7},
	{"bad at 8", "abcdefgh\xFF", 8},
	{"bad at 9", "abcdefghi\x80", 9},
	{"bad at 15", "abcdefghijklmno\xC0", 15},
	{"bad at 16", "abcdefghijklmnop\xC0", 16},
	{"bad after mixed", "héllo wörld\xFFmore text here", 13},
	{"surrogate across block", "abcdefgh日本\xED\xA0\x80abcdefgh", 15},
	{"F4 90 across block", "abcdef\xF4\x90\x80\x80abcdefgh", 7},
	{"bad in block after partial", "\xE6\x97\xA5abcd\xE6\x97\xFFabcdefgh", 9},
	{"bad late in long ascii", strings.Repeat("a", 100) + "\xFF" + strings.Repeat("b", 20), 100},
	{"bad after long mixed", strings.Repeat("日本語🙂", 10) + "\xED\xBF\xBF", 131},
}

func TestUTF8Table(t *testing.T) {
	for _, tc := range utf8Cases {
		in := []byte(tc.in)
		if ref := refFirstBad(in); ref != tc.bad {
			t.Errorf("%s: table says bad at %d, reference says %d", tc.name, tc.bad, ref)
		}
		if ref := refFirstBadBrute(in); ref != tc.bad {
			t.Errorf("%s: table says bad at %d, brute-force reference says %d", tc.name, tc.bad, ref)
		}
		wantValid := utf8.Valid(in)

		var u UTF8
		n, err := u.Write(in)
		if tc.bad >= 0 {
			if n != tc.bad || !errors.Is(err, ErrInvalidUTF8) {
				t.Errorf("%s: Write = %d, %v; want %d, ErrInvalidUTF8", tc.name, n, err, tc.bad)
			}
		} else if n != len(in) || err != nil {
			t.Errorf("%s: Write = %d, %v; want %d, nil", tc.name, n, err, len(in))
		}
		if got := u.Finish() == nil; got != wantValid {
			t.Errorf("%s: Finish() == nil is %v, utf8.Valid is %v", tc.name, got, wantValid)
		}
		if got := ValidUTF8(in); got != wantValid {
			t.Errorf("%s: ValidUTF8 = %v, utf8.Valid = %v", tc.name, got, wantValid)
		}
	}
}

// checkPieces feeds in to a fresh UTF8 cut at the given increasing positions and checks
// that the invalid byte is reported by the piece holding it, at its offset in that piece,
// that later pieces get 0, ErrInvalidUTF8, and that Finish agrees with utf8.Valid.
func checkPieces(t *testing.T, name string, in []byte, bad int, cuts ...int) {
	t.Helper()
	var u UTF8
	start := 0
	for k := 0; k <= len(cuts); k++ {
		end := len(in)
		if k < len(cuts) {
			end = cuts[k]
		}
		n, err := u.Write(in[start:end])
		switch {
		case bad >= 0 && bad < start:
			if n != 0 || !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("%s cut %v: piece %d after the error: Write = %d, %v; want 0, ErrInvalidUTF8",
					name, cuts, k, n, err)
			}
		case bad >= start && bad < end:
			if n != bad-start || !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("%s cut %v: piece %d [%d:%d]: Write = %d, %v; want %d, ErrInvalidUTF8",
					name, cuts, k, start, end, n, err, bad-start)
			}
		default:
			if n != end-start || err != nil {
				t.Fatalf("%s cut %v: piece %d [%d:%d]: Write = %d, %v; want %d, nil",
					name, cuts, k, start, end, n, err, end-start)
			}
		}
		start = end
	}
	if got, want := u.Finish() == nil, utf8.Valid(in); got != want {
		t.Fatalf("%s cut %v: Finish() == nil is %v, utf8.Valid is %v", name, cuts, got, want)
	}
}

func TestUTF8Split(t *testing.T) {
	for _, tc := range utf8Cases {
		in := []byte(tc.in)
		for i := 0; i <= len(in); i++ {
			checkPieces(t, tc.name, in, tc.bad, i)
			for j := i; j <= len(in) && len(in) <= 64; j++ {
				checkPieces(t, tc.name, in, tc.bad, i, j)
			}
		}
		every := make([]int, 0, len(in))
		for i := 1; i < len(in); i++ {
			every = append(every, i)
		}
		checkPieces(t, tc.name+" byte-by-byte", in, tc.bad, every...)
	}
}

// TestUTF8Exhaustive runs every sequence of up to 4 bytes drawn from the bytes at the edges
// of each range the state machine distinguishes, plus every 2-byte sequence.
func TestUTF8Exhaustive(t *testing.T) {
	edges := []byte{
		0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
		0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF,
	}
	check := func(in []byte) {
		var u UTF8
		n, err := u.Write(in)
		want := refFirstBad(in)
		if want < 0 && (n != len(in) || err != nil) || want >= 0 && (n != want || err == nil) {
			t.Fatalf("% X: Write = %d, %v; want first bad at %d", in, n, err, want)
		}
		if got, valid := u.Finish() == nil, utf8.Valid(in); got != valid || ValidUTF8(in) != valid {
			t.Fatalf("% X: Finish() == nil is %v, ValidUTF8 %v, utf8.Valid %v", in, got, ValidUTF8(in), valid)
		}
	}
	var buf [12]byte
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			check([]byte{byte(a), byte(b)})
		}
	}
	for _, a := range edges {
		for _, b := range edges {
			for _, c := range edges {
				for _, d := range edges {
					check([]byte{a, b, c, d})
					// Also where Write steps them as part of an 8-byte block.
					copy(buf[:], "abcde")
					buf[5], buf[6], buf[7], buf[8] = a, b, c, d
					copy(buf[9:], "xyz")
					check(buf[:])
				}
			}
		}
	}
}

func TestUTF8Sticky(t *testing.T) {
	var u UTF8
	if n, err := u.Write([]byte("ok\xE0")); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v; want 3, nil", n, err)
	}
	if err := u.Finish(); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("Finish inside a character = %v; want ErrInvalidUTF8", err)
	}
	if n, err := u.Write([]byte("\x80")); n != 0 || !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("Write(E0 80) = %d, %v; want 0, ErrInvalidUTF8", n, err)
	}
	for _, p := range [][]byte{nil, []byte("fine"), []byte(strings.Repeat("x", 20))} {
		if n, err := u.Write(p); n != 0 || !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("Write(%q) after error = %d, %v; want 0, ErrInvalidUTF8", p, n, err)
		}
	}
	// Finish does not reset.
	for range 2 {
		if err := u.Finish(); !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("Finish after error = %v; want ErrInvalidUTF8", err)
		}
	}
	var pe *ProtocolError
	if err := u.Finish(); !errors.As(err, &pe) || pe.Code != CloseInvalidPayload {
		t.Fatalf("Finish error %v is not a ProtocolError with code 1007", err)
	}
	u.Reset()
	if err := u.Finish(); err != nil {
		t.Fatalf("Finish after Reset = %v; want nil", err)
	}
	if n, err := u.Write([]byte("\x80")); n != 0 || !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("Write(80) after Reset = %d, %v; want 0, ErrInvalidUTF8", n, err)
	}
	u.Reset()
	if n, err := u.Write([]byte("\xE0")); n != 1 || err != nil {
		t.Fatalf("Write(E0) = %d, %v; want 1, nil", n, err)
	}
	u.Reset() // drops the partial character too
	if n, err := u.Write([]byte("\x80")); n != 0 || !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("Write(80) after Reset = %d, %v; want 0, ErrInvalidUTF8", n, err)
	}
}

func TestUTF8MultiWriter(t *testing.T) {
	var u UTF8
	var sink bytes.Buffer
	w := io.MultiWriter(&u, &sink)
	if _, err := io.WriteString(w, "héllo"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte{0xFF}); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("MultiWriter Write = %v; want ErrInvalidUTF8", err)
	}
}

func TestUTF8Allocs(t *testing.T) {
	text := []byte(strings.Repeat("héllo wörld 日本語 🙂 ", 20))
	bad := append(append([]byte{}, text...), 0xFF)
	var u UTF8
	allocs := testing.AllocsPerRun(100, func() {
		u.Reset()
		u.Write(text[:7])
		u.Write(text[7:])
		u.Finish()
		u.Reset()
		u.Write(bad)
		ValidUTF8(text)
		ValidUTF8(bad)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run; want 0", allocs)
	}
}

func FuzzUTF8(f *testing.F) {
	for _, tc := range utf8Cases {
		f.Add([]byte(tc.in), uint16(1), uint16(len(tc.in)/2))
	}
	f.Add([]byte("héllo"), uint16(2), uint16(2))
	f.Add([]byte("abcdefgh\xF0\x9F\x99"), uint16(9), uint16(10))
	f.Add([]byte("abcdefg\xED\xA0\x80hijklmnop"), uint16(8), uint16(9))
	f.Add([]byte("\xF4\x90\x80\x80"), uint16(1), uint16(0))
	f.Add([]byte(strings.Repeat("日本語🙂é", 3)+"\xE0\x80"), uint16(30), uint16(35))
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 uint16) {
		if len(data) > 256 {
			// Longer inputs reach no state that shorter ones miss, and the fuzzer spends
			// time cubic in the length minimizing each new interesting input.
			return
		}
		a, b := int(s1)%(len(data)+1), int(s2)%(len(data)+1)
		if a > b {
			a, b = b, a
		}
		valid := utf8.Valid(data)
		if ValidUTF8(data) != valid {
			t.Fatalf("ValidUTF8(% X) = %v; utf8.Valid = %v", data, !valid, valid)
		}
		want := refFirstBad(data)
		if want >= 0 && valid {
			t.Fatalf("reference found a bad byte at %d in valid % X", want, data)
		}

		var u UTF8
		n, err := u.Write(data)
		if want < 0 && (n != len(data) || err != nil) || want >= 0 && (n != want || !errors.Is(err, ErrInvalidUTF8)) {
			t.Fatalf("Write(% X) = %d, %v; want first bad at %d", data, n, err, want)
		}
		if (u.Finish() == nil) != valid {
			t.Fatalf("Finish after Write(% X) = %v; utf8.Valid = %v", data, u.Finish(), valid)
		}
		checkPieces(t, "fuzz", data, want, a, b)
	})
}

// mixedText returns n bytes of valid text cycling through 1- to 4-byte characters, padded
// with spaces so it neither exceeds n nor ends inside a character.
func mixedText(n int) []byte {
	const unit = "héllo wörld 日本語 🙂 "
	buf := make([]byte, 0, n)
	for len(buf)+len(unit) <= n {
		buf = append(buf, unit...)
	}
	for len(buf) < n {
		buf = append(buf, ' ')
	}
	return buf
}

var utf8BenchInputs = []struct {
	name string
	data []byte
}{
	{"ascii-4KiB", bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. "), 92)[:4096]},
	{"mixed-4KiB", mixedText(4096)},
}

func BenchmarkUTF8(b *testing.B) {
	for _, in := range utf8BenchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			var u UTF8
			for b.Loop() {
				u.Reset()
				if _, err := u.Write(in.data); err != nil {
					b.Fatal(err)
				}
				if err := u.Finish(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStdUTF8Valid(b *testing.B) {
	for _, in := range utf8BenchInputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if !utf8.Valid(in.data) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
