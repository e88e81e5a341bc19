package handshake

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

const (
	pmd   = "permessage-deflate"
	noCT  = pmd + "; server_no_context_takeover; client_no_context_takeover"
	sNoCT = pmd + "; server_no_context_takeover"
	cNoCT = pmd + "; client_no_context_takeover"
)

// TestAcceptDeflate is the server's negotiation matrix (RFC 7692 section 7.1): for each offer,
// the answer without and with ContextTakeover, "" for an offer declined.
func TestAcceptDeflate(t *testing.T) {
	d := func(noCT, peerNoCT bool, bits int, peerBits ...int) transport.DeflateParams {
		p := transport.DeflateParams{Enabled: true, NoContextTakeover: noCT, PeerNoContextTakeover: peerNoCT, MaxWindowBits: bits}
		if len(peerBits) > 0 {
			p.PeerMaxWindowBits = peerBits[0]
		}
		return p
	}
	tests := []struct {
		name            string
		offers          []string
		plain, takeover string
		plainD, takeD   transport.DeflateParams
	}{
		{"bare offer", []string{pmd}, noCT, pmd, d(true, true, 0), d(false, false, 0)},
		{"client_max_window_bits is left out", []string{pmd + "; client_max_window_bits"}, noCT, pmd, d(true, true, 0), d(false, false, 0)},
		{"client_max_window_bits=10 is echoed", []string{pmd + "; client_max_window_bits=10"},
			noCT + "; client_max_window_bits=10", pmd + "; client_max_window_bits=10", d(true, true, 0, 10), d(false, false, 0, 10)},
		{"server_no_context_takeover is echoed", []string{sNoCT}, noCT, sNoCT, d(true, true, 0), d(true, false, 0)},
		{"client_no_context_takeover is echoed", []string{cNoCT}, noCT, cNoCT, d(true, true, 0), d(false, true, 0)},
		{"server_max_window_bits=15", []string{pmd + "; server_max_window_bits=15"},
			noCT + "; server_max_window_bits=15", pmd + "; server_max_window_bits=15", d(true, true, 15), d(false, false, 15)},
		{"server_max_window_bits=10 keeps context", []string{pmd + "; server_max_window_bits=10"},
			noCT + "; server_max_window_bits=10", pmd + "; server_max_window_bits=10", d(true, true, 10), d(false, false, 10)},
		{"quoted window bits", []string{pmd + `; server_max_window_bits="9"`},
			noCT + "; server_max_window_bits=9", pmd + "; server_max_window_bits=9", d(true, true, 9), d(false, false, 9)},
		{"everything", []string{pmd + "; server_max_window_bits=8; client_max_window_bits; server_no_context_takeover; client_no_context_takeover"},
			noCT + "; server_max_window_bits=8", noCT + "; server_max_window_bits=8", d(true, true, 8), d(true, true, 8)},
		{"names in any case", []string{"PerMessage-Deflate; Server_No_Context_Takeover"}, noCT, sNoCT, d(true, true, 0), d(true, false, 0)},
		{"Chrome's offer", []string{pmd + "; client_max_window_bits"}, noCT, pmd, d(true, true, 0), d(false, false, 0)},
		{"first acceptable of several", []string{pmd + "; server_max_window_bits, " + cNoCT + ", " + pmd}, noCT, cNoCT, d(true, true, 0), d(false, true, 0)},
		{"across header lines", []string{"x-webkit-deflate-frame", pmd + "; unknown", sNoCT}, noCT, sNoCT, d(true, true, 0), d(true, false, 0)},
		{"Autobahn 13.7", []string{sNoCT + "; server_max_window_bits=8, " + sNoCT + ", " + pmd},
			noCT + "; server_max_window_bits=8", sNoCT + "; server_max_window_bits=8", d(true, true, 8), d(true, false, 8)},
		{"other extension only", []string{"x-webkit-deflate-frame"}, "", "", transport.DeflateParams{}, transport.DeflateParams{}},
	}
	declined := []string{
		"; server_max_window_bits", "; server_max_window_bits=16", "; server_max_window_bits=7",
		"; server_max_window_bits=08", "; server_max_window_bits=+9", "; server_max_window_bits=abc",
		"; client_max_window_bits=16", "; client_max_window_bits=0", "; foo", "; foo=1",
		"; server_no_context_takeover; server_no_context_takeover", "; client_max_window_bits; client_max_window_bits=9",
		"; server_no_context_takeover=1", `; client_no_context_takeover="x"`,
	}
	for _, p := range declined {
		tests = append(tests, struct {
			name            string
			offers          []string
			plain, takeover string
			plainD, takeD   transport.DeflateParams
		}{"declined" + p, []string{pmd + p}, "", "", transport.DeflateParams{}, transport.DeflateParams{}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, takeover := range []bool{false, true} {
				want, wantD := tt.plain, tt.plainD
				if takeover {
					want, wantD = tt.takeover, tt.takeD
				}
				got, gotD := acceptDeflate(tt.offers, &transport.CompressionOptions{ContextTakeover: takeover})
				if got != want || gotD != wantD {
					t.Errorf("takeover %v: %q %+v, want %q %+v", takeover, got, gotD, want, wantD)
				}
				// The client accepts every answer the server gives to its own offer.
				if got != "" {
					cd, err := checkDeflate([]string{got}, &transport.CompressionOptions{})
					if err != nil || cd.PeerNoContextTakeover != gotD.NoContextTakeover || !cd.NoContextTakeover {
						t.Errorf("client reads %q as %+v, %v", got, cd, err)
					}
				}
			}
		})
	}
}

// TestCheckDeflate is the client's side: answers it accepts, with what they mean for the
// Conn, and answers it fails on.
func TestCheckDeflate(t *testing.T) {
	plain, takeover := &transport.CompressionOptions{}, &transport.CompressionOptions{ContextTakeover: true}
	d := func(noCT, peerNoCT bool, bits int) transport.DeflateParams {
		return transport.DeflateParams{Enabled: true, NoContextTakeover: noCT, PeerNoContextTakeover: peerNoCT, MaxWindowBits: bits}
	}
	good := []struct {
		answers []string
		opts    *transport.CompressionOptions
		want    transport.DeflateParams
	}{
		{nil, plain, transport.DeflateParams{}},
		{[]string{""}, plain, transport.DeflateParams{}},
		{[]string{pmd}, takeover, d(false, false, 0)},
		{[]string{pmd}, plain, d(true, false, 0)}, // server_no_context_takeover missing: tolerated
		{[]string{noCT}, plain, d(true, true, 0)},
		{[]string{sNoCT}, takeover, d(false, true, 0)},
		{[]string{cNoCT}, takeover, d(true, false, 0)},
		{[]string{pmd + "; server_max_window_bits=10"}, takeover, transport.DeflateParams{Enabled: true, PeerMaxWindowBits: 10}},
		{[]string{pmd + "; client_max_window_bits=9"}, takeover, d(false, false, 9)},
		{[]string{" , " + pmd + "; client_max_window_bits=15"}, takeover, d(false, false, 15)},
		{[]string{"PERMESSAGE-DEFLATE; SERVER_NO_CONTEXT_TAKEOVER"}, takeover, d(false, true, 0)},
	}
	for _, tt := range good {
		got, err := checkDeflate(tt.answers, tt.opts)
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.answers, got, err, tt.want)
		}
	}
	// With MaxWindowBits, the client offers both limits and holds the server to its own.
	small := &transport.CompressionOptions{ContextTakeover: true, MaxWindowBits: 10}
	if got := offerDeflate(small); got != pmd+"; client_max_window_bits=10; server_max_window_bits=10" {
		t.Errorf("offer %q", got)
	}
	if got, err := checkDeflate([]string{pmd + "; server_max_window_bits=9; client_max_window_bits=9"}, small); err != nil ||
		got != (transport.DeflateParams{Enabled: true, MaxWindowBits: 9, PeerMaxWindowBits: 9}) {
		t.Errorf("answer within the limit: %+v, %v", got, err)
	}
	bad := []struct {
		answers []string
		opts    *transport.CompressionOptions
	}{
		{[]string{pmd}, small},                                 // server_max_window_bits left out
		{[]string{pmd + "; server_max_window_bits=12"}, small}, // over the limit offered
		{[]string{pmd}, nil},                                   // not offered
		{[]string{"x-webkit-deflate-frame"}, plain},
		{[]string{pmd + ", x-foo"}, plain},
		{[]string{pmd + ", " + pmd}, plain},
		{[]string{pmd, pmd}, plain},
		{[]string{pmd + "; client_max_window_bits"}, plain}, // a value is required in an answer
		{[]string{pmd + "; client_max_window_bits=7"}, plain},
		{[]string{pmd + "; server_max_window_bits=16"}, plain},
		{[]string{pmd + "; server_max_window_bits"}, plain},
		{[]string{pmd + "; foo"}, plain},
		{[]string{sNoCT + "; server_no_context_takeover"}, plain},
		{[]string{pmd + "; client_no_context_takeover=yes"}, plain},
		{[]string{pmd + ";;"}, plain},
	}
	for _, tt := range bad {
		if got, err := checkDeflate(tt.answers, tt.opts); !errors.Is(err, ErrExtension) {
			t.Errorf("%q: %+v, %v; want ErrExtension", tt.answers, got, err)
		}
	}
}

// TestDeflateHandshake negotiates through Upgrade and Dial, for each combination of the two
// sides' options, and checks the agreement both report, the offer on the wire, and that each
// direction is compressed (RSV1) or not, as agreed, with messages intact.
func TestDeflateHandshake(t *testing.T) {
	copts := func(takeover bool) *transport.CompressionOptions {
		return &transport.CompressionOptions{ContextTakeover: takeover, Threshold: -1}
	}
	tests := []struct {
		name           string
		server, client *transport.CompressionOptions
		want           string
	}{
		{"both plain", copts(false), copts(false), noCT},
		{"server plain", copts(false), copts(true), noCT},
		{"client plain", copts(true), copts(false), noCT},
		{"both takeover", copts(true), copts(true), pmd},
		{"server off", nil, copts(false), ""},
		{"client off", copts(true), nil, ""},
	}
	msg := bytes.Repeat([]byte("compress me, compress me again; "), 200)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			type seen struct {
				offer, ext string
				rsv1       bool
				err        error
			}
			got := make(chan seen, 1)
			so := &ServerOptions{}
			so.Compression = tt.server
			srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Upgrade(w, r, so)
				if err != nil {
					got <- seen{err: err}
					return
				}
				defer c.CloseNow()
				f, err := c.RecvFrame(5 * time.Second)
				got <- seen{offer: r.Header.Get("Sec-WebSocket-Extensions"), ext: c.Extensions(), rsv1: f.Rsv1, err: err}
				if err == nil && !bytes.Equal(f.Payload, msg) {
					t.Error("server got a different message")
				}
				c.WriteMessage(context.Background(), f.Opcode, f.Payload)
				c.ReadMessage(r.Context(), nil) // until the client's close
			}), false)
			do := &DialOptions{}
			do.Compression = tt.client
			c, resp, err := Dial(t.Context(), wsURL(srv), do)
			if err != nil {
				t.Fatal(err)
			}
			if c.Extensions() != tt.want || resp.Header.Get("Sec-WebSocket-Extensions") != tt.want {
				t.Errorf("client reports %q, answer %q; want %q", c.Extensions(), resp.Header.Get("Sec-WebSocket-Extensions"), tt.want)
			}
			if _, err := c.WriteMessage(context.Background(), frame.OpText, msg); err != nil {
				t.Fatal(err)
			}
			s := <-got
			if s.err != nil || s.ext != tt.want || s.rsv1 != (tt.want != "") {
				t.Errorf("server: %+v", s)
			}
			if tt.client != nil && s.offer != offerDeflate(tt.client) {
				t.Errorf("offer %q", s.offer)
			}
			f, err := c.RecvFrame(5 * time.Second)
			if err != nil || f.Rsv1 != (tt.want != "") || !bytes.Equal(f.Payload, msg) {
				t.Errorf("echo: %+v %v", f.Header, err)
			}
			if st := c.Stats(); tt.want != "" && st.BytesOut > uint64(len(msg))/10 {
				t.Errorf("%d bytes sent for %d", st.BytesOut, len(msg))
			}
			c.Close(frame.CloseNormal, "")
		})
	}
}

// TestDeflateUpgradeAnswer checks the 101 answer that Upgrade writes, and that a malformed
// offer is still refused with 400 whatever the compression options.
func TestDeflateUpgradeAnswer(t *testing.T) {
	opts := &ServerOptions{}
	opts.Compression = &transport.CompressionOptions{}
	r := newRequestForTest()
	r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10; client_max_window_bits")
	w := newHijackWriter("")
	c, err := Upgrade(w, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := noCT + "; server_max_window_bits=10"
	if c.Extensions() != want || !strings.Contains(w.conn.out.String(), "\r\nSec-WebSocket-Extensions: "+want+"\r\n") {
		t.Fatalf("Extensions %q, answer:\n%s", c.Extensions(), w.conn.out.String())
	}
	r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; =1")
	if _, err := Upgrade(newHijackWriter(""), r, opts); !errors.Is(err, ErrBadExtensions) {
		t.Fatalf("malformed offer: %v", err)
	}
}

// TestAcceptDeflateWindowLimit is the server's side of CompressionOptions.MaxWindowBits: it
// limits both windows as far as the offer lets it.
func TestAcceptDeflateWindowLimit(t *testing.T) {
	opts := &transport.CompressionOptions{ContextTakeover: true, MaxWindowBits: 10}
	tests := []struct {
		offer, answer string
		want          transport.DeflateParams
	}{
		{pmd, pmd, transport.DeflateParams{Enabled: true, MaxWindowBits: 10}},
		{pmd + "; client_max_window_bits", pmd + "; client_max_window_bits=10", transport.DeflateParams{Enabled: true, MaxWindowBits: 10, PeerMaxWindowBits: 10}},
		{pmd + "; client_max_window_bits=9", pmd + "; client_max_window_bits=9", transport.DeflateParams{Enabled: true, MaxWindowBits: 10, PeerMaxWindowBits: 9}},
		{pmd + "; server_max_window_bits=12; client_max_window_bits=12", pmd + "; server_max_window_bits=10; client_max_window_bits=10",
			transport.DeflateParams{Enabled: true, MaxWindowBits: 10, PeerMaxWindowBits: 10}},
		{pmd + "; server_max_window_bits=8", pmd + "; server_max_window_bits=8", transport.DeflateParams{Enabled: true, MaxWindowBits: 8}},
	}
	for _, tt := range tests {
		got, gotD := acceptDeflate([]string{tt.offer}, opts)
		if got != tt.answer || gotD != tt.want {
			t.Errorf("%q: %q %+v, want %q %+v", tt.offer, got, gotD, tt.answer, tt.want)
		}
	}
}
