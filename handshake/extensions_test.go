package handshake

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// ext is a parsed extension, for comparing what extParser yields.
type ext struct {
	name   string
	params [][2]string
}

// parseAll collects every extension and parameter of a header value.
func parseAll(s string) ([]ext, error) {
	var out []ext
	p := extParser{s: s}
	for {
		name, err := p.next()
		if err != nil || name == "" {
			return out, err
		}
		e := ext{name: name}
		for {
			pn, pv, err := p.param()
			if err != nil {
				return out, err
			}
			if pn == "" {
				break
			}
			e.params = append(e.params, [2]string{pn, pv})
		}
		out = append(out, e)
	}
}

// format writes extensions as a header value, values as bare tokens.
func format(exts []ext) string {
	var b strings.Builder
	for i, e := range exts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.name)
		for _, p := range e.params {
			b.WriteString("; " + p[0])
			if p[1] != "" {
				b.WriteString("=" + p[1])
			}
		}
	}
	return b.String()
}

func TestParseExtensions(t *testing.T) {
	tests := []struct {
		in   string
		want []ext
	}{
		{"", nil},
		{" , ,", nil},
		{"permessage-deflate", []ext{{name: "permessage-deflate"}}},
		{"permessage-deflate; client_max_window_bits", []ext{{"permessage-deflate", [][2]string{{"client_max_window_bits", ""}}}}},
		{"a;b=1 ; c = \"2\"\t,, d ;e=\"x\\y\"", []ext{{"a", [][2]string{{"b", "1"}, {"c", "2"}}}, {"d", [][2]string{{"e", "xy"}}}}},
		{"x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover; client_max_window_bits=10", []ext{
			{name: "x-webkit-deflate-frame"},
			{"permessage-deflate", [][2]string{{"server_no_context_takeover", ""}, {"client_max_window_bits", "10"}}},
		}},
	}
	for _, tc := range tests {
		got, err := parseAll(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseExtensionsErrors(t *testing.T) {
	tests := []struct {
		in   string
		pos  int
		want string
	}{
		{"a b", 2, "expected ';' or ','"},
		{";", 0, "extension name is not a token"},
		{"a;", 2, "parameter name is not a token"},
		{"a; =1", 3, "parameter name is not a token"},
		{"a; b=", 5, "parameter value is not a token or quoted string"},
		{"a; b=,", 5, "parameter value is not a token or quoted string"},
		{`a; b="1`, 7, "unterminated quoted string"},
		{`a; b="1\`, 8, "unterminated quoted string"},
		{`a; b=""`, 7, "empty quoted value"},
		{`a; b="1 2"`, 7, "quoted value does not unescape to a token"},
		{`a; b="\""`, 7, "quoted value does not unescape to a token"},
		{"a; b=1 c", 7, "expected ';' or ','"},
		{"é", 0, "extension name is not a token"},
	}
	for _, tc := range tests {
		_, err := parseAll(tc.in)
		var se *extSyntaxError
		if !errors.As(err, &se) || se.pos != tc.pos || se.msg != tc.want {
			t.Errorf("parse(%q): %v; want %q at %d", tc.in, err, tc.want, tc.pos)
		}
	}
	if _, err := parseAll("a b"); err.Error() != "websocket: malformed Sec-WebSocket-Extensions at byte 2: expected ';' or ','" {
		t.Errorf("message %q", err)
	}
}

// TestExtParserSkipsParams checks that next skips the parameters nobody asked for, as a
// negotiator does for extensions it does not know.
func TestExtParserSkipsParams(t *testing.T) {
	p := extParser{s: `unknown; a=1; b="2", known; c, bad; =`}
	if name, err := p.next(); name != "unknown" || err != nil {
		t.Fatalf("next: %q, %v", name, err)
	}
	if name, err := p.next(); name != "known" || err != nil {
		t.Fatalf("next: %q, %v", name, err)
	}
	if name, _, err := p.param(); name != "c" || err != nil {
		t.Fatalf("param: %q, %v", name, err)
	}
	if name, err := p.next(); name != "bad" || err != nil {
		t.Fatalf("next: %q, %v", name, err)
	}
	if _, err := p.next(); err == nil {
		t.Fatal("malformed parameter skipped without an error")
	}
	if name, _, err := (&extParser{s: "x"}).param(); name != "" || err != nil {
		t.Fatalf("param before next: %q, %v", name, err)
	}
}

func FuzzParseExtensions(f *testing.F) {
	for _, s := range []string{
		"", "permessage-deflate; client_max_window_bits", `a;b=1 ; c = "2"` + "\t,, d ;e=\"x\\y\"",
		"a b", `a; b="1 2"`, "x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exts, err := parseAll(s)
		if err != nil {
			var se *extSyntaxError
			if !errors.As(err, &se) || se.pos < 0 || se.pos > len(s) {
				t.Fatalf("parse(%q): error %v", s, err)
			}
			return
		}
		again, err := parseAll(format(exts))
		if err != nil || !reflect.DeepEqual(again, exts) {
			t.Fatalf("round trip of %q through %q: %v, %v", s, format(exts), again, err)
		}
	})
}
