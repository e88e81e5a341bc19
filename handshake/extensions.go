package handshake

import (
	"strconv"
	"strings"
)

// extParser walks one Sec-WebSocket-Extensions header value (RFC 6455 section 9.1 in the
// RFC 7230 list grammar): `name; param=value; flag, name2`. It hands out substrings of the
// value, so walking a header allocates nothing; only a quoted value with backslash escapes
// is copied. Negotiation (permessage-deflate) builds on it: call next for each offered
// extension and param until it returns "" for that extension's parameters.
//
// Empty list elements (", ,") are skipped, as RFC 7230 section 7 asks of recipients; a value
// with no element at all yields no extension rather than an error.
type extParser struct {
	s     string
	pos   int
	inExt bool // next has returned a name whose parameters are not all read
}

// extSyntaxError says where and why a Sec-WebSocket-Extensions value is malformed.
type extSyntaxError struct {
	pos int
	msg string
}

func (e *extSyntaxError) Error() string {
	return "websocket: malformed Sec-WebSocket-Extensions at byte " + strconv.Itoa(e.pos) + ": " + e.msg
}

// next returns the name of the next extension, skipping any parameters of the current one
// that were not read, or "" at the end of the value.
func (p *extParser) next() (string, error) {
	for p.inExt {
		name, _, err := p.param()
		if err != nil {
			return "", err
		}
		if name == "" {
			break
		}
	}
	for p.pos < len(p.s) && (isOWS(p.s[p.pos]) || p.s[p.pos] == ',') {
		p.pos++
	}
	if p.pos == len(p.s) {
		return "", nil
	}
	name := p.token()
	if name == "" {
		return "", p.fail("extension name is not a token")
	}
	p.inExt = true
	return name, nil
}

// param returns the next parameter of the current extension, value "" for a parameter
// without one, or name "" once the extension has no more.
func (p *extParser) param() (name, value string, err error) {
	if !p.inExt {
		return "", "", nil
	}
	p.skipOWS()
	if p.pos == len(p.s) || p.s[p.pos] == ',' {
		p.inExt = false
		return "", "", nil
	}
	if p.s[p.pos] != ';' {
		return "", "", p.fail("expected ';' or ','")
	}
	p.pos++
	p.skipOWS()
	if name = p.token(); name == "" {
		return "", "", p.fail("parameter name is not a token")
	}
	p.skipOWS()
	if p.pos == len(p.s) || p.s[p.pos] != '=' {
		return name, "", nil
	}
	p.pos++
	p.skipOWS()
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		value, err = p.quoted()
	} else if value = p.token(); value == "" {
		err = p.fail("parameter value is not a token or quoted string")
	}
	return name, value, err
}

// quoted reads a quoted-string value. RFC 6455 section 9.1 requires that it unescape to a
// token, so only token characters, plain or backslash-escaped, may appear inside.
func (p *extParser) quoted() (string, error) {
	p.pos++ // opening quote
	start, escaped := p.pos, false
	for ; p.pos < len(p.s) && p.s[p.pos] != '"'; p.pos++ {
		c := p.s[p.pos]
		if c == '\\' {
			escaped = true
			p.pos++
			if p.pos == len(p.s) {
				break
			}
			c = p.s[p.pos]
		}
		if !isTokenChar(c) {
			return "", p.fail("quoted value does not unescape to a token")
		}
	}
	if p.pos == len(p.s) {
		return "", p.fail("unterminated quoted string")
	}
	raw := p.s[start:p.pos]
	p.pos++ // closing quote
	if raw == "" {
		return "", p.fail("empty quoted value")
	}
	if !escaped {
		return raw, nil
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' {
			i++
		}
		b.WriteByte(raw[i])
	}
	return b.String(), nil
}

func (p *extParser) token() string {
	start := p.pos
	for p.pos < len(p.s) && isTokenChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *extParser) skipOWS() {
	for p.pos < len(p.s) && isOWS(p.s[p.pos]) {
		p.pos++
	}
}

func (p *extParser) fail(msg string) error {
	return &extSyntaxError{pos: p.pos, msg: msg}
}

// isTokenChar reports whether c is a tchar of RFC 7230 section 3.2.6.
func isTokenChar(c byte) bool {
	return c < 0x80 && tokenChars[c]
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isOWS(c byte) bool { return c == ' ' || c == '\t' }
