package handshake

import "strings"

// nextElement splits the first element off a comma-separated header list (RFC 7230 section 7)
// and trims its optional whitespace. Working on substrings keeps header checks allocation-free.
func nextElement(list string) (elem, rest string) {
	elem, rest, _ = strings.Cut(list, ",")
	return strings.Trim(elem, " \t"), rest
}

// hasToken reports whether any of the header lines holds token as a list element, compared
// case-insensitively, as Upgrade and Connection values are.
func hasToken(lines []string, token string) bool {
	for _, line := range lines {
		for line != "" {
			var elem string
			elem, line = nextElement(line)
			if strings.EqualFold(elem, token) {
				return true
			}
		}
	}
	return false
}

// hasElement reports whether any of the header lines holds elem exactly, as subprotocol names
// are compared.
func hasElement(lines []string, elem string) bool {
	for _, line := range lines {
		for line != "" {
			var e string
			e, line = nextElement(line)
			if e == elem {
				return true
			}
		}
	}
	return false
}

// elements returns the non-empty elements of the header lines.
func elements(lines []string) []string {
	var out []string
	for _, line := range lines {
		for line != "" {
			var e string
			if e, line = nextElement(line); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}
