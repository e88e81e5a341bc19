package conformance

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ecows/ecows/frame"
)

// utf8Seq is one entry of Autobahn's UTF-8 table (case6_x_x.py, after Markus Kuhn's
// UTF-8-test.txt): a payload and whether it is valid UTF-8.
type utf8Seq struct {
	valid bool
	b     string
}

type utf8Group struct {
	name string
	seqs []utf8Seq
}

// utf8Table returns groups 6.5 to 6.23 in Autobahn's order.
func utf8Table() []utf8Group {
	vss := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
	var gs []utf8Group
	add := func(name string, seqs ...utf8Seq) { gs = append(gs, utf8Group{name, seqs}) }
	ok := func(s string) utf8Seq { return utf8Seq{true, s} }
	bad := func(s string) utf8Seq { return utf8Seq{false, s} }

	add("Some valid UTF-8 sequences",
		ok("hello\x24world"), ok("hello\xc2\xa2world"), ok("hello\xe2\x82\xacworld"), ok("hello\xf0\xa4\xad\xa2world"), ok(vss))
	var prefixes []utf8Seq
	for i := 1; i <= len(vss); i++ {
		prefixes = append(prefixes, utf8Seq{utf8.ValidString(vss[:i]), vss[:i]})
	}
	add("All prefixes of a valid UTF-8 string that contains multi-byte code points", prefixes...)
	add("First possible sequence of a certain length", ok("\x00"), ok("\xc2\x80"), ok("\xe0\xa0\x80"), ok("\xf0\x90\x80\x80"))
	add("First possible sequence length 5/6 (invalid codepoints)", bad("\xf8\x88\x80\x80\x80"), bad("\xfc\x84\x80\x80\x80\x80"))
	add("Last possible sequence of a certain length", ok("\x7f"), ok("\xdf\xbf"), ok("\xef\xbf\xbf"), ok("\xf4\x8f\xbf\xbf"))
	add("Last possible sequence length 4/5/6 (invalid codepoints)", bad("\xf7\xbf\xbf\xbf"), bad("\xfb\xbf\xbf\xbf\xbf"), bad("\xfd\xbf\xbf\xbf\xbf\xbf"))
	add("Other boundary conditions", ok("\xed\x9f\xbf"), ok("\xee\x80\x80"), ok("\xef\xbf\xbd"), ok("\xf4\x8f\xbf\xbf"), bad("\xf4\x90\x80\x80"))
	var conts strings.Builder
	for c := 0x80; c < 0xbf; c++ {
		conts.WriteByte(byte(c))
	}
	add("Unexpected continuation bytes", bad("\x80"), bad("\xbf"), bad("\x80\xbf"), bad("\x80\xbf\x80"), bad("\x80\xbf\x80\xbf"),
		bad("\x80\xbf\x80\xbf\x80"), bad("\x80\xbf\x80\xbf\x80\xbf"), bad(conts.String()))
	var lonely []utf8Seq
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var s strings.Builder
		for c := r[0]; c < r[1]; c++ {
			s.WriteByte(byte(c))
			s.WriteByte(0x20)
		}
		lonely = append(lonely, bad(s.String()))
	}
	add("Lonely start characters", lonely...)
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	var ms []utf8Seq
	for _, s := range missing {
		ms = append(ms, bad(s))
	}
	add("Sequences with last continuation byte missing", ms...)
	add("Concatenation of incomplete sequences", bad(strings.Join(missing, "")))
	add("Impossible bytes", bad("\xfe"), bad("\xff"), bad("\xfe\xfe\xff\xff"))
	add("Examples of an overlong ASCII character", bad("\xc0\xaf"), bad("\xe0\x80\xaf"), bad("\xf0\x80\x80\xaf"), bad("\xf8\x80\x80\x80\xaf"), bad("\xfc\x80\x80\x80\x80\xaf"))
	add("Maximum overlong sequences", bad("\xc1\xbf"), bad("\xe0\x9f\xbf"), bad("\xf0\x8f\xbf\xbf"), bad("\xf8\x87\xbf\xbf\xbf"), bad("\xfc\x83\xbf\xbf\xbf\xbf"))
	add("Overlong representation of the NUL character", bad("\xc0\x80"), bad("\xe0\x80\x80"), bad("\xf0\x80\x80\x80"), bad("\xf8\x80\x80\x80\x80"), bad("\xfc\x80\x80\x80\x80\x80"))
	add("Single UTF-16 surrogates", bad("\xed\xa0\x80"), bad("\xed\xad\xbf"), bad("\xed\xae\x80"), bad("\xed\xaf\xbf"), bad("\xed\xb0\x80"), bad("\xed\xbe\x80"), bad("\xed\xbf\xbf"))
	add("Paired UTF-16 surrogates", bad("\xed\xa0\x80\xed\xb0\x80"), bad("\xed\xa0\x80\xed\xbf\xbf"), bad("\xed\xad\xbf\xed\xb0\x80"), bad("\xed\xad\xbf\xed\xbf\xbf"),
		bad("\xed\xae\x80\xed\xb0\x80"), bad("\xed\xae\x80\xed\xbf\xbf"), bad("\xed\xaf\xbf\xed\xb0\x80"), bad("\xed\xaf\xbf\xed\xbf\xbf"))
	nonchars := []utf8Seq{ok("\xef\xbf\xbe"), ok("\xef\xbf\xbf")}
	for _, z1 := range []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4} {
		for _, z2 := range []byte{0x8f, 0x9f, 0xaf, 0xbf} {
			if z1 == 0xf4 && z2 != 0x8f {
				continue // above U+10FFFF
			}
			for _, z3 := range []byte{0xbe, 0xbf} {
				zz := string([]byte{z1, z2, 0xbf, z3})
				if zz != "\xf0\x8f\xbf\xbe" && zz != "\xf0\x8f\xbf\xbf" { // overlong
					nonchars = append(nonchars, ok(zz))
				}
			}
		}
	}
	add("Non-character code points (valid UTF-8)", nonchars...)
	add("Unicode specials (i.e. replacement char)", ok("\xef\xbf\xb9"), ok("\xef\xbf\xba"), ok("\xef\xbf\xbb"), ok("\xef\xbf\xbc"), ok("\xef\xbf\xbd"), ok("\xef\xbf\xbe"), ok("\xef\xbf\xbf"))
	return gs
}

// TestUTF8Table checks the transcription of Autobahn's table against the standard library's
// idea of UTF-8 and its size (132 cases, 6.5.1 to 6.23.7).
func TestUTF8Table(t *testing.T) {
	n := 0
	for i, g := range utf8Table() {
		for j, s := range g.seqs {
			n++
			if utf8.ValidString(s.b) != s.valid {
				t.Errorf("6.%d.%d %q: listed as valid=%v", i+5, j+1, s.b, s.valid)
			}
		}
	}
	if n != 132 {
		t.Errorf("%d sequences, want 132", n)
	}
}

// failOffset returns the index of the first byte of s after which no valid UTF-8 text can
// follow, len(s) when s is a valid prefix that ends inside a character, and -1 when s is
// valid. It is computed independently of ecows' validator.
func failOffset(s string) int {
	if utf8.ValidString(s) {
		return -1
	}
	for i := 1; i <= len(s); i++ {
		if !validPrefix(s[:i]) {
			return i - 1
		}
	}
	return len(s)
}

// validPrefix reports whether some completion of at most 3 bytes makes p valid UTF-8. Only
// the byte after a lead byte has a narrowed range, so trying every continuation byte there
// and 0x80 after it covers every case.
func validPrefix(p string) bool {
	if utf8.ValidString(p) {
		return true
	}
	for n := 1; n <= 3; n++ {
		for b := 0x80; b <= 0xbf; b++ {
			if utf8.ValidString(p + string([]byte{byte(b)}) + strings.Repeat("\x80", n-1)) {
				return true
			}
		}
	}
	return false
}

// bytewise returns the frames of a text message with one byte in each.
func bytewise(s string) []wframe {
	if s == "" {
		return []wframe{text("")}
	}
	return fragments(frame.OpText, []byte(s), 1)
}

// Group 6: UTF-8 in text messages (cases 6.1.1-6.23.7, and every table entry again in 1-byte
// fragments with a fail-fast check).
func utf8Cases() []tcase {
	const greek = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	const mixed = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
	invalid := greek + "\xed\xa0\x80" + "edited" // invalid at byte 12 (0xa0)
	cs := []tcase{
		{id: "6.1.1", desc: "empty text", steps: []step{send(text(""))}, want: []event{msgText("")}},
		{id: "6.1.2", desc: "text in 3 empty fragments", steps: []step{send(first(""), cont(false, ""), cont(true, ""))}, want: []event{msgText("")}},
		{id: "6.1.3", desc: "text in 3 fragments, first and last empty",
			steps: []step{send(first(""), cont(false, "middle frame payload"), cont(true, ""))}, want: []event{msgText("middle frame payload")}},
		{id: "6.2.1", desc: "valid UTF-8 in one frame", steps: []step{send(text(mixed))}, want: []event{msgText(mixed)}},
		{id: "6.2.2", desc: "valid UTF-8 in 2 fragments split on a code point boundary",
			steps: []step{send(first("Hello-\u00b5@\u00df\u00f6\u00e4"), cont(true, "\u00fc\u00e0\u00e1-UTF-8!!"))}, want: []event{msgText(mixed)}},
		{id: "6.2.3", desc: "valid UTF-8 in 1-byte fragments", steps: []step{send(bytewise(mixed)...)}, want: []event{msgText(mixed)}},
		{id: "6.2.4", desc: "valid UTF-8 (κόσμε) in 1-byte fragments", steps: []step{send(bytewise(greek)...)}, want: []event{msgText(greek)}},
		failure("6.3.1", "invalid UTF-8 in one frame", invalidPayload, nil, send(text(invalid))),
		failure("6.3.2", "invalid UTF-8 in 1-byte fragments", invalidPayload, nil, send(bytewise(invalid)...)),
	}

	// 6.4.x: fail fast. The part before the offending byte is valid: the connection must
	// stay open through a pause; the part with it must make the testee close with 1007 at
	// once, while the rest of the message is withheld. Autobahn pauses 1 s; 100 ms here.
	p641 := greek + "\xf4\x90\x80\x80" + "edited" // 0x90 after 0xf4 is above U+10FFFF
	whole := func(from, to int) wframe {
		return wframe{fin: true, op: frame.OpText, payload: []byte(p641), part: true, from: from, to: to}
	}
	failFast := func(id, desc string, a, b, c wframe) tcase {
		return failure(id, desc, invalidPayload, nil,
			step{frames: []wframe{a}, pause: pause, open: true},
			step{frames: []wframe{b}, failFast: true},
			step{frames: []wframe{c}})
	}
	cs = append(cs,
		failFast("6.4.1", "fail fast: 3 fragments, the 2nd makes the text invalid (F4 90 80 80)",
			first(greek), cont(false, "\xf4\x90\x80\x80"), cont(true, "edited")),
		failFast("6.4.2", "fail fast: 3 fragments, the 2nd is just the offending byte",
			first(p641[:12]), cont(false, p641[12:13]), cont(true, p641[13:])),
		failFast("6.4.3", "fail fast: one frame in 3 chops, the 2nd makes the text invalid",
			whole(0, 11), whole(11, 15), whole(15, len(p641))),
		failFast("6.4.4", "fail fast: one frame in 3 chops, the 2nd is just the offending byte",
			whole(0, 12), whole(12, 13), whole(13, len(p641))),
	)

	for i, g := range utf8Table() {
		for j, s := range g.seqs {
			id := fmt.Sprintf("6.%d.%d", i+5, j+1)
			desc := fmt.Sprintf("%s: %x", g.name, s.b)
			if s.valid {
				cs = append(cs,
					tcase{id: id, desc: desc + " in one frame", steps: []step{send(text(s.b))}, want: []event{msgText(s.b)}},
					tcase{id: id + "-bytewise", desc: desc + " in 1-byte fragments", steps: []step{send(bytewise(s.b)...)}, want: []event{msgText(s.b)}})
				continue
			}
			// Beyond Autobahn, which sends the table in one frame only: the same payload in
			// 1-byte fragments, sent up to the first byte no valid text can continue with
			// (the final fragment when the text is merely truncated); the 1007 must come
			// before anything more is sent.
			fs := bytewise(s.b)
			k := failOffset(s.b)
			if k == len(s.b) {
				k--
			}
			steps := []step{{frames: fs[:k+1], failFast: true}}
			if k+1 < len(fs) {
				steps = append(steps, send(fs[k+1:]...))
			}
			cs = append(cs,
				failure(id, desc+" in one frame", invalidPayload, nil, send(text(s.b))),
				failure(id+"-bytewise", desc+" in 1-byte fragments, failing fast", invalidPayload, nil, steps...))
		}
	}
	return cs
}
