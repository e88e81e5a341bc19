package handshake

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ecows/ecows/transport"
)

// This file negotiates permessage-deflate (RFC 7692 section 7.1) for both sides.
//
// Every parameter is honoured as agreed (package deflate): a window limit bounds the
// back-references this side makes and the context it keeps, in either direction, with or
// without context takeover.

// deflateName is the extension's registered name (RFC 7692 section 7).
const deflateName = "permessage-deflate"

// deflateParams are the parameters of one permessage-deflate offer or answer. A window size
// is 0 when absent, -1 when present without a value (client_max_window_bits in an offer), and
// 8 to 15 otherwise.
type deflateParams struct {
	serverNoContextTakeover, clientNoContextTakeover bool
	serverMaxWindowBits, clientMaxWindowBits         int
}

var errDeflateParams = errors.New("invalid permessage-deflate parameters")

// parseDeflate reads the parameters of the permessage-deflate element that p has just named.
// It fails, as RFC 7692 section 7 has a server decline such an offer and a client fail on such
// an answer, on a parameter that is unknown, repeated or given an invalid value. offer says
// the element is a client's offer, where client_max_window_bits may come without a value.
func parseDeflate(p *extParser, offer bool) (deflateParams, error) {
	var d deflateParams
	seen := 0
	for {
		name, value, err := p.param()
		if err != nil {
			return d, err
		}
		if name == "" {
			return d, nil
		}
		var bit int
		switch strings.ToLower(name) {
		case "server_no_context_takeover":
			bit, err = 1, noValue(value)
			d.serverNoContextTakeover = true
		case "client_no_context_takeover":
			bit, err = 2, noValue(value)
			d.clientNoContextTakeover = true
		case "server_max_window_bits":
			bit = 4
			d.serverMaxWindowBits, err = windowBits(value, false)
		case "client_max_window_bits":
			bit = 8
			d.clientMaxWindowBits, err = windowBits(value, offer)
		default:
			return d, fmt.Errorf("%w: unknown parameter %q", errDeflateParams, name)
		}
		if seen&bit != 0 {
			return d, fmt.Errorf("%w: %s given twice", errDeflateParams, name)
		}
		if err != nil {
			return d, fmt.Errorf("%w: %s: %w", errDeflateParams, name, err)
		}
		seen |= bit
	}
}

func noValue(v string) error {
	if v != "" {
		return errors.New("takes no value")
	}
	return nil
}

// windowBits parses a window size: a decimal from 8 to 15 without leading zeros (RFC 7692
// sections 7.1.2.1 and 7.1.2.2), or nothing at all where optional says it may be absent.
func windowBits(v string, optional bool) (int, error) {
	if v == "" && optional {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 8 || n > 15 || v[0] == '0' || v[0] == '+' {
		return 0, fmt.Errorf("window bits %q, want 8 to 15", v)
	}
	return n, nil
}

// acceptDeflate is the server's side: it answers the first permessage-deflate offer among the
// request's Sec-WebSocket-Extensions lines that it can honour, in the client's order of
// preference, and returns the answer's element and the Conn's agreement; "" when it declines
// every offer. The lines have been checked for syntax already (checkRequest).
//
// The negotiation (RFC 7692 section 7.1):
//   - An offer with an unknown, repeated or invalid parameter is declined (section 7).
//   - server_no_context_takeover: honoured, and echoed as section 7.1.1.1 requires. Without
//     ContextTakeover the server sends it unasked, as that section allows, and compresses
//     each message with a pooled compressor.
//   - client_no_context_takeover: echoed when offered, and sent unasked without
//     ContextTakeover (section 7.1.1.2 allows both), so that the server may inflate each
//     message with a pooled decompressor.
//   - server_max_window_bits=N: accepted, answered with N or CompressionOptions.MaxWindowBits
//     if that is less (section 7.1.2.1): the server's back-references reach no further, and
//     with context takeover it keeps that window. Without it, the server still compresses
//     within MaxWindowBits, which a sender may always do, and says nothing.
//   - client_max_window_bits: with a value N, answered with N or MaxWindowBits if that is less
//     (section 7.1.2.2), and the server keeps that window of the client's messages; without a
//     value, answered with MaxWindowBits when it is below 15, and left out otherwise (the
//     client then uses up to 15 bits). An offer without it gets no limit from the server.
func acceptDeflate(lines []string, opts *transport.CompressionOptions) (string, transport.DeflateParams) {
	for _, line := range lines {
		p := extParser{s: line}
		for {
			name, err := p.next()
			if err != nil || name == "" {
				break
			}
			if !strings.EqualFold(name, deflateName) {
				continue
			}
			d, err := parseDeflate(&p, true)
			if err != nil {
				continue // declined: perhaps a later offer will do
			}
			return answerDeflate(d, opts)
		}
	}
	return "", transport.DeflateParams{}
}

// answerDeflate writes the server's answer to an acceptable offer.
func answerDeflate(d deflateParams, opts *transport.CompressionOptions) (string, transport.DeflateParams) {
	limit := maxBits(opts)
	t := transport.DeflateParams{Enabled: true, MaxWindowBits: ownBits(opts)}
	var b strings.Builder
	b.WriteString(deflateName)
	if d.serverNoContextTakeover || !opts.ContextTakeover {
		b.WriteString("; server_no_context_takeover")
		t.NoContextTakeover = true
	}
	if d.clientNoContextTakeover || !opts.ContextTakeover {
		b.WriteString("; client_no_context_takeover")
		t.PeerNoContextTakeover = true
	}
	if d.serverMaxWindowBits > 0 {
		t.MaxWindowBits = min(d.serverMaxWindowBits, limit)
		b.WriteString("; server_max_window_bits=")
		b.WriteString(strconv.Itoa(t.MaxWindowBits))
	}
	if d.clientMaxWindowBits > 0 || d.clientMaxWindowBits < 0 && limit < 15 {
		t.PeerMaxWindowBits = limit
		if d.clientMaxWindowBits > 0 {
			t.PeerMaxWindowBits = min(d.clientMaxWindowBits, limit)
		}
		b.WriteString("; client_max_window_bits=")
		b.WriteString(strconv.Itoa(t.PeerMaxWindowBits))
	}
	return b.String(), t
}

// ownBits is maxBits as DeflateParams has it: 0 for 15.
func ownBits(opts *transport.CompressionOptions) int {
	if b := maxBits(opts); b < 15 {
		return b
	}
	return 0
}

// maxBits returns CompressionOptions.MaxWindowBits within 8 to 15, 0 and negative (no limit)
// meaning 15.
func maxBits(opts *transport.CompressionOptions) int {
	if opts.MaxWindowBits <= 0 {
		return 15
	}
	return min(max(opts.MaxWindowBits, 8), 15)
}

// offerDeflate is the client's offer. client_max_window_bits, as browsers send it, tells the
// server that the client can limit its window, which some servers require before they
// accept; with CompressionOptions.MaxWindowBits below 15 the offer also asks the server to
// keep within it (server_max_window_bits), since the client keeps that window of what the
// server sends.
func offerDeflate(opts *transport.CompressionOptions) string {
	s := deflateName
	if !opts.ContextTakeover {
		s += "; server_no_context_takeover; client_no_context_takeover"
	}
	if limit := maxBits(opts); limit < 15 {
		return s + "; client_max_window_bits=" + strconv.Itoa(limit) + "; server_max_window_bits=" + strconv.Itoa(limit)
	}
	return s + "; client_max_window_bits"
}

// checkDeflate is the client's side: it checks the server's Sec-WebSocket-Extensions answer
// against the offer (none when opts is nil) and returns the agreement. It fails on an
// extension that was not offered, on permessage-deflate accepted twice, and on an answer
// with an unknown, repeated or invalid parameter (RFC 7692 section 7), which includes
// client_max_window_bits without a value. A server that leaves out the
// server_no_context_takeover the client offered breaks section 7.1.1.1, but is tolerated:
// the client then keeps its decompressor's context, which is always correct.
func checkDeflate(lines []string, opts *transport.CompressionOptions) (transport.DeflateParams, error) {
	var t transport.DeflateParams
	for _, line := range lines {
		p := extParser{s: line}
		for {
			name, err := p.next()
			if err != nil {
				return t, fmt.Errorf("%w: %w", ErrExtension, err)
			}
			if name == "" {
				break
			}
			switch {
			case opts == nil || !strings.EqualFold(name, deflateName):
				return t, fmt.Errorf("%w: %q", ErrExtension, name)
			case t.Enabled:
				return t, fmt.Errorf("%w: %s accepted twice", ErrExtension, deflateName)
			}
			d, err := parseDeflate(&p, false)
			if err != nil {
				return t, fmt.Errorf("%w: %w", ErrExtension, err)
			}
			t = transport.DeflateParams{
				Enabled:               true,
				NoContextTakeover:     d.clientNoContextTakeover || !opts.ContextTakeover,
				PeerNoContextTakeover: d.serverNoContextTakeover,
				MaxWindowBits:         ownBits(opts),
				PeerMaxWindowBits:     d.serverMaxWindowBits,
			}
			if d.clientMaxWindowBits > 0 {
				t.MaxWindowBits = min(maxBits(opts), d.clientMaxWindowBits)
			}
			if limit := maxBits(opts); limit < 15 && (d.serverMaxWindowBits == 0 || d.serverMaxWindowBits > limit) {
				return t, fmt.Errorf("%w: server_max_window_bits=%d offered, answered %q", ErrExtension, limit, line)
			}
		}
	}
	return t, nil
}
