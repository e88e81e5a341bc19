package conformance

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/internal/wstest"
)

// This file opens the connections of groups 12 and 13: the permessage-deflate negotiation
// (RFC 7692 section 7.1) done by hand on the suite's side, the check of the testee's side of
// it, and the agreement both ends must then keep.

// ask is what the suite asks of one end's compressor: no context takeover, and a window of
// bits (8 to 15; 0: not asked).
type ask struct {
	noContext bool
	bits      int
}

// params are what a case asks of the testee's compressor and of the suite's own. As a
// client the suite asks them in its offer (server_* for the testee, client_* for itself); as
// a server, in its answer (client_* for the testee, server_* for itself).
type params struct {
	testee, suite ask
}

// extParams are the parameters of one permessage-deflate element; a window of -1 stands for
// client_max_window_bits without a value.
type extParams struct {
	serverNoContext, clientNoContext bool
	serverBits, clientBits           int
}

// parseDeflateExt parses a Sec-WebSocket-Extensions value made only of permessage-deflate
// elements, as RFC 7692 section 7 and RFC 6455 section 9.1 write them, without quoted values.
func parseDeflateExt(v string) ([]extParams, error) {
	var out []extParams
	for _, elem := range strings.Split(v, ",") {
		parts := strings.Split(elem, ";")
		if strings.TrimSpace(parts[0]) != "permessage-deflate" {
			return nil, fmt.Errorf("extension %q, want permessage-deflate", strings.TrimSpace(parts[0]))
		}
		var e extParams
		seen := map[string]bool{}
		for _, p := range parts[1:] {
			name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
			if seen[name] {
				return nil, fmt.Errorf("%s given twice in %q", name, elem)
			}
			seen[name] = true
			bits := 0
			if hasValue {
				n, err := strconv.Atoi(value)
				if err != nil || n < 8 || n > 15 || value != strconv.Itoa(n) {
					return nil, fmt.Errorf("%s=%q", name, value)
				}
				bits = n
			}
			switch {
			case name == "server_no_context_takeover" && !hasValue:
				e.serverNoContext = true
			case name == "client_no_context_takeover" && !hasValue:
				e.clientNoContext = true
			case name == "server_max_window_bits" && hasValue:
				e.serverBits = bits
			case name == "client_max_window_bits" && hasValue:
				e.clientBits = bits
			case name == "client_max_window_bits":
				e.clientBits = -1
			default:
				return nil, fmt.Errorf("parameter %q in %q", p, elem)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func (e extParams) String() string {
	s := "permessage-deflate"
	if e.serverNoContext {
		s += "; server_no_context_takeover"
	}
	if e.clientNoContext {
		s += "; client_no_context_takeover"
	}
	if e.serverBits > 0 {
		s += "; server_max_window_bits=" + strconv.Itoa(e.serverBits)
	}
	switch {
	case e.clientBits > 0:
		s += "; client_max_window_bits=" + strconv.Itoa(e.clientBits)
	case e.clientBits < 0:
		s += "; client_max_window_bits"
	}
	return s
}

// offerFor is the suite's offer, as a client, for p: client_max_window_bits is always there,
// as browsers send it, with a value only when p limits the suite's window.
func offerFor(p params) extParams {
	return extParams{
		serverNoContext: p.testee.noContext, clientNoContext: p.suite.noContext,
		serverBits: p.testee.bits, clientBits: cmp0(p.suite.bits, -1),
	}
}

// cmp0 returns v, or def when v is 0.
func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// agreement is what each end may do once the handshake is over.
type agreement struct {
	testee, suite deflateSide
}

// serverAgreement checks the server testee's answer a to the suite's offer o (RFC 7692
// sections 7.1.1 and 7.1.2), and what the testee's -compress mode promises, and returns the
// agreement. A client_no_context_takeover hint in o binds the suite as well.
func serverAgreement(o, a extParams, mode string) (agreement, error) {
	switch {
	case o.serverNoContext && !a.serverNoContext:
		return agreement{}, fmt.Errorf("server_no_context_takeover offered, not in the answer")
	case o.serverBits > 0 && (a.serverBits == 0 || a.serverBits > o.serverBits):
		return agreement{}, fmt.Errorf("server_max_window_bits=%d offered, answered with %d", o.serverBits, a.serverBits)
	case a.clientBits < 0 || a.clientBits > 0 && o.clientBits == 0 || o.clientBits > 0 && a.clientBits > o.clientBits:
		return agreement{}, fmt.Errorf("client_max_window_bits %d answered to %d offered", a.clientBits, o.clientBits)
	case mode == "on" && !(a.serverNoContext && a.clientNoContext):
		return agreement{}, fmt.Errorf("-compress on answers without both no_context_takeover parameters")
	// With takeover the server keeps its context unless asked, or unless it compresses with
	// a window it cannot keep; it lets the client keep its own unless asked.
	case mode == "takeover" && a.serverNoContext && !o.serverNoContext && cmp0(a.serverBits, 15) == 15:
		return agreement{}, fmt.Errorf("-compress takeover answers server_no_context_takeover unasked")
	case mode == "takeover" && a.clientNoContext && !o.clientNoContext:
		return agreement{}, fmt.Errorf("-compress takeover answers client_no_context_takeover unasked")
	}
	suiteBits := min(cmp0(max(a.clientBits, 0), 15), cmp0(max(o.clientBits, 0), 15))
	return agreement{
		testee: deflateSide{noContext: a.serverNoContext, bits: cmp0(a.serverBits, 15)},
		suite:  deflateSide{noContext: a.clientNoContext || o.clientNoContext, bits: suiteBits},
	}, nil
}

// clientAnswer is the suite's answer, as a server, to the client testee's offer o, asking
// p: it echoes server_no_context_takeover and keeps within server_max_window_bits if o
// asks them, as section 7.1 requires. It fails when p asks the testee for a window and o
// does not say the client can limit its window. A client_no_context_takeover hint in o binds
// the testee.
func clientAnswer(o extParams, p params) (extParams, agreement, error) {
	a := extParams{
		serverNoContext: p.suite.noContext || o.serverNoContext,
		clientNoContext: p.testee.noContext,
		serverBits:      p.suite.bits,
		clientBits:      p.testee.bits,
	}
	if o.serverBits > 0 {
		a.serverBits = min(cmp0(a.serverBits, 15), o.serverBits)
	}
	if a.clientBits > 0 {
		if o.clientBits == 0 {
			return a, agreement{}, fmt.Errorf("offer %q has no client_max_window_bits", o)
		}
		if o.clientBits > 0 {
			a.clientBits = min(a.clientBits, o.clientBits)
		}
	}
	return a, agreement{
		testee: deflateSide{noContext: a.clientNoContext || o.clientNoContext, bits: cmp0(a.clientBits, 15)},
		suite:  deflateSide{noContext: a.serverNoContext, bits: cmp0(a.serverBits, 15)},
	}, nil
}

// deflateConn is the suite's end of one connection of groups 12 and 13.
type deflateConn struct {
	conn *net.TCPConn
	br   *bufio.Reader
	ag   agreement
	done <-chan error // the testee's goroutine's end
}

// connectServerDeflate opens a connection to the server testee s, offering the elements of
// offers in order, and checks the answer against the first offer it fits.
func connectServerDeflate(t *testing.T, s *echoServer, mode string, offers []extParams, deadline time.Time) *deflateConn {
	t.Helper()
	var elems []string
	for _, o := range offers {
		elems = append(elems, o.String())
	}
	key := newKey()
	conn, br, h, err := s.open(key, "Sec-WebSocket-Extensions: "+strings.Join(elems, ", ")+"\r\n", deadline)
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("Sec-Websocket-Accept"); got != wstest.AcceptKey(key) {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	answer := strings.Join(h["Sec-Websocket-Extensions"], ", ")
	as, err := parseDeflateExt(answer)
	if err != nil || len(as) != 1 {
		t.Fatalf("Sec-WebSocket-Extensions %q to the offer %q: %v, want one permessage-deflate", answer, strings.Join(elems, ", "), err)
	}
	var ag agreement
	for _, o := range offers {
		if ag, err = serverAgreement(o, as[0], mode); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("answer %q to the offer %q: %v", answer, strings.Join(elems, ", "), err)
	}
	return &deflateConn{conn: conn, br: br, ag: ag, done: s.started(t, conn)}
}

// connectClientDeflate has a client testee in mode dial the suite, answers its offer as p
// asks, and checks that the testee's Conn reports that answer as its extensions.
func connectClientDeflate(t *testing.T, mode string, p params, deadline time.Time) *deflateConn {
	t.Helper()
	opts := *clientOpts
	opts.Compression, _ = compressflag.Options(mode)
	ct := acceptClient(t, &opts, deadline)
	t.Cleanup(func() {
		ct.conn.Close()
		ct.cancel()
	})
	offer := strings.Join(ct.h["Sec-Websocket-Extensions"], ", ")
	offers, err := parseDeflateExt(offer)
	if err != nil || len(offers) != 1 {
		t.Fatalf("Sec-WebSocket-Extensions %q: %v, want one permessage-deflate offer", offer, err)
	}
	if mode == "on" && !(offers[0].serverNoContext && offers[0].clientNoContext) {
		t.Fatalf("-compress on offers %q, without both no_context_takeover parameters", offer)
	}
	a, ag, err := clientAnswer(offers[0], p)
	if err != nil {
		t.Fatal(err)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wstest.AcceptKey(ct.h.Get("Sec-Websocket-Key")) + "\r\n" +
		"Sec-WebSocket-Extensions: " + a.String() + "\r\n\r\n"
	if _, err := ct.conn.Write([]byte(resp)); err != nil {
		t.Fatal(err)
	}
	select {
	case ext := <-ct.exts:
		if ext != a.String() {
			t.Fatalf("the client's Extensions() = %q, want the answer %q", ext, a)
		}
	case err := <-ct.done:
		t.Fatalf("the client refused the answer %q to its offer %q: %v", a, offer, err)
	}
	ct.conn.SetDeadline(time.Time{})
	return &deflateConn{conn: ct.conn, br: ct.br, ag: ag, done: ct.done}
}
