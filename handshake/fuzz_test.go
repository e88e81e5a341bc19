package handshake

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ecows/ecows/transport"
)

// FuzzCheckRequest feeds arbitrary requests through the server's checks: each is refused with
// a 4xx HandshakeError, or accepted, and then the answer Upgrade would write must satisfy the
// client's checks.
func FuzzCheckRequest(f *testing.F) {
	f.Add(rawRequest(""))
	f.Add(rawRequest("", "Origin: https://app.example.com", "Sec-WebSocket-Protocol: chat, superchat"))
	f.Add(rawRequest("", "Connection: keep-alive", "+Connection: Upgrade", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"))
	f.Add(rawRequest("POST / HTTP/1.1"))
	f.Add(rawRequest("GET / HTTP/1.0", "Sec-WebSocket-Version: 8"))
	f.Add(rawRequest("", "Origin: null", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="))
	f.Add(rawRequest("", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate; client_no_context_takeover"))
	f.Add(rawRequest("", "Sec-WebSocket-Extensions: x-foo, permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate"))
	f.Add(rawRequest("", "Content-Length: 5") + "hello")
	f.Add(rawRequest("", "Transfer-Encoding: chunked") + "5\r\nhello\r\n0\r\n\r\n")
	f.Add(rawRequest("", "Content-Length: 5", "Transfer-Encoding: chunked") + "5\r\nhello\r\n0\r\n\r\n")
	opts := &ServerOptions{OriginPatterns: []string{"*.example.com"}, Subprotocols: []string{"superchat", "chat"}}
	opts.Compression = &transport.CompressionOptions{}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader([]byte(raw))))
		if err != nil {
			return
		}
		key, herr := checkRequest(r, opts)
		if herr != nil {
			if herr.Status < 400 || herr.Status > 499 || herr.Reason == "" {
				t.Fatalf("refusal %v", herr)
			}
			return
		}
		subprotocol := selectSubprotocol(r, opts)
		ext, deflate := acceptDeflate(r.Header["Sec-Websocket-Extensions"], opts.Compression)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(appendResponse(nil, key, subprotocol, ext, nil))), r)
		if err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		dopts := &DialOptions{Subprotocols: elements(r.Header["Sec-Websocket-Protocol"])}
		dopts.Compression = &transport.CompressionOptions{}
		got, err := checkResponse(resp, key, dopts)
		if err != nil || got.Subprotocol != subprotocol || got.Extensions != ext || got.Deflate.Enabled != deflate.Enabled ||
			got.Deflate.PeerNoContextTakeover != deflate.NoContextTakeover {
			t.Fatalf("client refuses or misreads the answer %q: %+v, %v", ext, got, err)
		}
	})
}

// fuzzMaxHead is the head bound FuzzCheckResponse reads answers with, small enough for the
// fuzzer to cross often.
const fuzzMaxHead = 256

// FuzzCheckResponse feeds arbitrary answers through the client's reading and checks: the
// bounded read agrees with net/http's unbounded one on every answer whose head fits, refuses
// the others with a HeadTooLargeError without reading past the bound, and loses none of the
// bytes behind the head; each answer read is accepted with an offered subprotocol or none,
// or refused with one of the documented errors.
func FuzzCheckResponse(f *testing.F) {
	good := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("a", n-len("X-Pad: \r\n\r\n")) + "\r\n\r\n" }
	f.Add(good + pad(fuzzMaxHead-len(good)) + "\x81\x05hello")   // head at the bound, a frame behind it
	f.Add(good + pad(fuzzMaxHead-len(good)+1) + "\x81\x05hello") // one byte over
	f.Add("HTTP/1.1 101 " + strings.Repeat("a", 2*fuzzMaxHead) + "\r\n\r\n")
	f.Add(good + "X-Long: " + strings.Repeat("a", 2*fuzzMaxHead) + "\r\n\r\n")
	f.Add(good + strings.Repeat("X-Many: a\r\n", fuzzMaxHead/8) + "\r\n")
	f.Add(good + "\r\n")
	f.Add(good + "Sec-WebSocket-Protocol: chat\r\n\r\n")
	f.Add(good + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
	f.Add("HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno\n")
	f.Add("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
	f.Add(good + "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=9\r\n\r\n")
	f.Add(good + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
	offered := []string{"chat", "superchat"}
	opts := &DialOptions{Subprotocols: offered}
	opts.Compression = &transport.CompressionOptions{}
	req := newRequestForTest()
	f.Fuzz(func(t *testing.T, raw string) {
		in := strings.NewReader(raw)
		resp, br, err := readResponse(in, req, fuzzMaxHead)
		uin := strings.NewReader(raw)
		ubr := bufio.NewReader(uin)
		uresp, uerr := http.ReadResponse(ubr, req)
		// uhead is how much of raw net/http's parser, unbounded, took as the head.
		uhead := len(raw) - uin.Len() - ubr.Buffered()
		var he *HeadTooLargeError
		switch {
		case errors.As(err, &he):
			if he.Limit != fuzzMaxHead || len(raw)-in.Len() > fuzzMaxHead {
				t.Fatalf("%v after reading %d bytes", err, len(raw)-in.Len())
			}
			if uerr == nil && uhead <= fuzzMaxHead {
				t.Fatalf("head of %d bytes refused: %v", uhead, err)
			}
			return
		case err != nil:
			if uerr == nil {
				t.Fatalf("bounded read fails with %v, unbounded succeeds", err)
			}
			return
		case uerr != nil:
			t.Fatalf("bounded read succeeds, unbounded fails with %v", uerr)
		}
		head := len(raw) - in.Len() - br.Buffered()
		if head > fuzzMaxHead || head != uhead || resp.StatusCode != uresp.StatusCode || len(resp.Header) != len(uresp.Header) {
			t.Fatalf("head of %d bytes read as %d %v; unbounded %d bytes, %d %v", head, resp.StatusCode, resp.Header, uhead, uresp.StatusCode, uresp.Header)
		}
		if resp.StatusCode == 101 {
			// What Dial hands the Conn, with what it left unread, is everything behind the head.
			if rest, _ := br.Peek(br.Buffered()); string(rest)+raw[len(raw)-in.Len():] != raw[head:] {
				t.Fatalf("bytes behind the head lost")
			}
		}
		setup, err := checkResponse(resp, testKey, opts)
		if err == nil {
			if resp.StatusCode != 101 || setup.Subprotocol != "" && !slices.Contains(offered, setup.Subprotocol) {
				t.Fatalf("accepted status %d, subprotocol %q", resp.StatusCode, setup.Subprotocol)
			}
			if d := setup.Deflate; d.Enabled != (setup.Extensions != "") || d.MaxWindowBits != 0 && (d.MaxWindowBits < 8 || d.MaxWindowBits > 15) {
				t.Fatalf("accepted extensions %q as %+v", setup.Extensions, d)
			}
			return
		}
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.Response == resp && resp.StatusCode != 101:
		case errors.Is(err, ErrResponseUpgrade), errors.Is(err, ErrResponseConnection), errors.Is(err, ErrAccept),
			errors.Is(err, ErrSubprotocol), errors.Is(err, ErrExtension):
		default:
			t.Fatalf("undocumented error %v", err)
		}
	})
}
