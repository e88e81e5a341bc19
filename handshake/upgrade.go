package handshake

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

// ServerOptions configure Upgrade. The zero value (or nil) accepts same-origin and
// non-browser clients with no subprotocol and the transport defaults. Upgrade never modifies
// ServerOptions, so one value can serve every request.
type ServerOptions struct {
	// Options configure the Conn that Upgrade returns (MaxPayloadLen and the rest).
	transport.Options

	// Subprotocols lists the subprotocols the server speaks, most preferred first. Upgrade
	// picks the first of them that the client offered; none offered means none chosen.
	Subprotocols []string

	// SelectSubprotocol, when set, replaces Subprotocols: it is called with the client's
	// offers (only when there is at least one) and returns the one to use, or "" for none.
	// A name the client did not offer is ignored, since the client would refuse it.
	SelectSubprotocol func(r *http.Request, offered []string) string

	// OriginPatterns opens the server to browser pages from other hosts. A request with an
	// Origin header is refused (403) unless the origin's host (host:port as given) equals the
	// request's Host, case-insensitively, or matches one of these path.Match patterns, such as
	// "example.com" or "*.example.com:8080". This stops other sites from using a visitor's
	// cookies to open WebSockets to this server (cross-site WebSocket hijacking). A malformed
	// pattern fails the request with 500 (ErrOriginPattern) rather than being ignored.
	OriginPatterns []string

	// CheckOrigin, when set, replaces the host and pattern check for requests that carry an
	// Origin header (including "null", which the default check always refuses): it returns
	// whether to accept. Requests without Origin, from non-browser clients, are always allowed.
	CheckOrigin func(r *http.Request) bool

	// Header holds extra headers for the 101 response, such as Set-Cookie. Headers that the
	// handshake writes itself (Upgrade, Connection and Sec-WebSocket-*) and names that are not
	// tokens are left out, and line breaks in values become spaces, so a mistake here cannot
	// break the handshake or inject headers.
	Header http.Header

	// Metrics, when set, records each request's answer (accepted, or refused with its status
	// and reason) and gives each accepted connection its transport.Observer, labelled with
	// Route (package metrics).
	Metrics metrics.Recorder
	// Route labels what Metrics records, such as "/chat/{room}": a route pattern, never the
	// raw path, so that labels stay bounded. package router sets it to the chi route pattern
	// of each request.
	Route string
}

var defaultServerOptions ServerOptions

// Upgrade completes the server's side of the WebSocket opening handshake, the seed's
// websocket.upgrade, and returns the connection. It checks the request against RFC 6455
// section 4.2.1 and the Origin rules of opts, and refuses one with a body; a request that fails gets an error status with a
// one-line text/plain body, nothing is hijacked, and the returned error is a *HandshakeError
// matching one of the Err variables. Otherwise Upgrade takes over the connection from net/http
// (through http.ResponseController, so wrappers with an Unwrap method work), clears its
// deadlines, writes the 101 response and hands the Conn any bytes the client sent right after
// its request. The handler owns the Conn from then on, and must not use w again; the Conn
// outlives the request, so the handler may serve it from a goroutine of its own and return,
// which lets net/http free what it keeps per request (router.Handler does). When the
// hijack fails the error matches ErrNotHijackable; when writing the 101 response fails the
// connection is closed and the network error is returned, wrapped.
//
// With opts.Compression set, Upgrade accepts the first permessage-deflate offer (RFC 7692) it
// can honour and the Conn compresses; other extensions, and offers it declines, are ignored.
//
// An HTTP/2 extended CONNECT request (RFC 8441: method CONNECT, :protocol websocket) is
// upgraded too, with the same options, checks and error statuses, less what concerns HTTP/1.1
// (Upgrade, Connection, the key): Upgrade answers 200 and the Conn runs over the request's
// stream, reading the request body and writing the response; its HTTP2 method reports true.
// net/http's HTTP/2 server offers extended CONNECT only when the process starts with
// GODEBUG=http2xconnect=1 (Go 1.24 and later). The stream ends when the handler returns, so
// over HTTP/2 the handler must not return before the Conn is done (<-c.Done()), or must be
// wrapped in KeepHTTP2Streams; closing the Conn ends the stream, not the HTTP/2 connection.
// net/http gives back a connection's flow-control window only as handlers read their
// bodies, so a WebSocket that stops reading holds up to a stream's receive buffer of the
// connection's: give http.Server.HTTP2 a MaxReceiveBufferPerConnection several times its
// MaxReceiveBufferPerStream (both 1 MiB by default), or one stalled WebSocket stalls the
// others on its connection.
func Upgrade(w http.ResponseWriter, r *http.Request, opts *ServerOptions) (*transport.Conn, error) {
	if opts == nil {
		opts = &defaultServerOptions
	}
	if r.Method == http.MethodConnect && r.ProtoMajor == 2 {
		return upgradeH2(w, r, opts)
	}
	key, herr := checkRequest(r, opts)
	if herr != nil {
		return nil, refused(w, opts, herr, true)
	}
	setup := negotiate(r, opts)

	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		herr := &HandshakeError{Status: ErrNotHijackable.Status, Reason: ErrNotHijackable.Reason, Err: err}
		return nil, refused(w, opts, herr, errors.Is(err, http.ErrNotSupported))
	}
	if err := upgrade(nc, brw, key, setup.Subprotocol, setup.Extensions, opts.Header); err != nil {
		nc.Close()
		return nil, err
	}
	hijackedBuffers(brw, &setup)
	setup.Observer = accepted(r, opts, http.StatusSwitchingProtocols)
	return transport.NewConn(nc, transport.Server, setup, &opts.Options), nil
}

// hijackedBuffers hands the Conn the bytes the client sent right behind its request, which
// net/http's reader holds. The buffers themselves are left to the garbage collector: the Conn
// borrows pooled buffers only while data moves.
func hijackedBuffers(brw *bufio.ReadWriter, setup *transport.Setup) {
	if brw == nil {
		return
	}
	if br := brw.Reader; br != nil {
		if n := br.Buffered(); n > 0 {
			setup.Buffered, _ = br.Peek(n)
		}
	}
}

// upgrade clears the deadlines net/http set on the hijacked connection and writes the 101
// response, in the hijacked writer's spare buffer when there is one.
func upgrade(nc net.Conn, brw *bufio.ReadWriter, key, subprotocol, ext string, extra http.Header) error {
	nc.SetDeadline(time.Time{}) // fails only on a closed conn, which the write below reports
	var w *bufio.Writer
	var b []byte
	if brw != nil && brw.Writer != nil {
		w = brw.Writer
		b = w.AvailableBuffer()
	}
	b = appendResponse(b, key, subprotocol, ext, extra)
	var err error
	if w != nil {
		if _, err = w.Write(b); err == nil {
			err = w.Flush()
		}
	} else {
		_, err = nc.Write(b)
	}
	if err != nil {
		return fmt.Errorf("websocket: writing the 101 response: %w", err)
	}
	return nil
}

// refuse answers a request that cannot be upgraded, as http.Error does, with the headers
// that tell the client what to change.
func refuse(w http.ResponseWriter, e *HandshakeError) {
	switch e.Status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodGet)
	case http.StatusUpgradeRequired:
		w.Header().Set("Sec-WebSocket-Version", "13")
	}
	http.Error(w, e.Reason, e.Status)
}

// checkRequest applies RFC 6455 section 4.2.1 and the Origin rules, and returns the client's
// key. It allocates nothing for a request it accepts, so Upgrade's cost is mostly the hijack.
func checkRequest(r *http.Request, opts *ServerOptions) (key string, err *HandshakeError) {
	h := r.Header
	switch {
	case r.Method != http.MethodGet:
		return "", ErrMethod
	case !r.ProtoAtLeast(1, 1):
		return "", ErrHTTPVersion
	case r.ProtoMajor == 1 && (r.ContentLength != 0 || len(r.TransferEncoding) > 0):
		// Over HTTP/1.x the connection carries WebSocket frames right after the request, so
		// body bytes would be read as frames, smuggled past whatever inspected the request.
		// (An HTTP/2 extended CONNECT, RFC 8441, carries the frames in its body stream; it is
		// not HTTP/1.x, so this check would not apply to it.)
		return "", ErrRequestBody
	case r.Host == "":
		return "", ErrNoHost
	case !hasToken(h["Upgrade"], "websocket"):
		return "", ErrUpgradeHeader
	case !hasToken(h["Connection"], "upgrade"):
		return "", ErrConnectionHeader
	}
	// Version before key: a client of an older draft learns from the 426 what to speak.
	if v := h["Sec-Websocket-Version"]; len(v) != 1 || strings.Trim(v[0], " \t") != "13" {
		return "", ErrVersion
	}
	keys := h["Sec-Websocket-Key"]
	switch {
	case len(keys) == 0 || keys[0] == "":
		return "", ErrNoKey
	case len(keys) > 1 || !validKey(keys[0]):
		return "", ErrBadKey
	}
	if err := checkOrigin(r, opts); err != nil {
		return "", err
	}
	if err := checkExtensions(h); err != nil {
		return "", err
	}
	return keys[0], nil
}

// checkExtensions refuses a Sec-WebSocket-Extensions header that does not parse.
func checkExtensions(h http.Header) *HandshakeError {
	for _, v := range h["Sec-Websocket-Extensions"] {
		p := extParser{s: v}
		for {
			name, perr := p.next()
			if perr != nil {
				return &HandshakeError{Status: ErrBadExtensions.Status, Reason: ErrBadExtensions.Reason, Err: perr}
			}
			if name == "" {
				break
			}
		}
	}
	return nil
}

// validKey reports whether key is the base64 form of 16 bytes, as section 4.1 requires.
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	var raw [18]byte
	n, err := base64.StdEncoding.Decode(raw[:], []byte(key))
	return err == nil && n == 16
}

// checkOrigin refuses cross-origin browser requests unless opts allow them.
func checkOrigin(r *http.Request, opts *ServerOptions) *HandshakeError {
	origins := r.Header["Origin"]
	switch {
	case len(origins) == 0:
		return nil
	case opts.CheckOrigin != nil:
		if opts.CheckOrigin(r) {
			return nil
		}
		return ErrOrigin
	case len(origins) > 1:
		return ErrOrigin
	}
	host := originHost(origins[0])
	if host == "" {
		return ErrOrigin // "null" (opaque origins) and anything that is not scheme://host
	}
	if strings.EqualFold(host, r.Host) {
		return nil
	}
	host = strings.ToLower(host)
	for _, pattern := range opts.OriginPatterns {
		ok, err := path.Match(strings.ToLower(pattern), host)
		if err != nil {
			return &HandshakeError{Status: ErrOriginPattern.Status, Reason: ErrOriginPattern.Reason, Err: err}
		}
		if ok {
			return nil
		}
	}
	return ErrOrigin
}

// originHost returns the host[:port] of a serialized origin, scheme "://" host [":" port],
// or "" when origin has no such form. It does not use net/url, to stay allocation-free.
func originHost(origin string) string {
	_, host, ok := strings.Cut(origin, "://")
	if !ok || strings.HasPrefix(origin, ":") {
		return ""
	}
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if strings.ContainsAny(host, "@ \t") {
		return ""
	}
	return host
}

// negotiate picks the subprotocol and the extensions that the answer to r agrees, as the
// Conn's Setup.
func negotiate(r *http.Request, opts *ServerOptions) transport.Setup {
	setup := transport.Setup{Subprotocol: selectSubprotocol(r, opts)}
	if opts.Compression != nil {
		setup.Extensions, setup.Deflate = acceptDeflate(r.Header["Sec-Websocket-Extensions"], opts.Compression)
	}
	return setup
}

// selectSubprotocol picks the subprotocol for the response, or "".
func selectSubprotocol(r *http.Request, opts *ServerOptions) string {
	offers := r.Header["Sec-Websocket-Protocol"]
	if len(offers) == 0 {
		return ""
	}
	if opts.SelectSubprotocol != nil {
		offered := elements(offers)
		if len(offered) == 0 {
			return ""
		}
		if p := opts.SelectSubprotocol(r, offered); hasElement(offers, p) {
			return p
		}
		return ""
	}
	for _, p := range opts.Subprotocols {
		if p != "" && hasElement(offers, p) {
			return p
		}
	}
	return ""
}

// acceptGUID is the fixed suffix of RFC 6455 section 1.3 that proves a server read the key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// appendAccept appends the Sec-WebSocket-Accept value for key to dst. The hash input lives on
// the stack for keys of the standard 24 characters.
func appendAccept(dst []byte, key string) []byte {
	var in [24 + len(acceptGUID)]byte
	b := append(append(in[:0], key...), acceptGUID...)
	sum := sha1.Sum(b)
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// appendResponse appends the 101 response; headers are appended as bytes rather than built
// as an http.Header, which would allocate for every request.
func appendResponse(b []byte, key, subprotocol, ext string, extra http.Header) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAccept(b, key)
	b = append(b, "\r\n"...)
	if subprotocol != "" {
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, subprotocol...)
		b = append(b, "\r\n"...)
	}
	if ext != "" {
		b = append(b, "Sec-WebSocket-Extensions: "...)
		b = append(b, ext...)
		b = append(b, "\r\n"...)
	}
	for name, values := range extra {
		if !isToken(name) || handshakeHeader(name) {
			continue
		}
		for _, v := range values {
			b = append(b, name...)
			b = append(b, ": "...)
			for i := 0; i < len(v); i++ {
				c := v[i]
				if c == '\r' || c == '\n' {
					c = ' '
				}
				b = append(b, c)
			}
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// handshakeHeader reports whether name is a header the handshake itself sets.
func handshakeHeader(name string) bool {
	return strings.EqualFold(name, "Upgrade") || strings.EqualFold(name, "Connection") ||
		len(name) >= len("Sec-WebSocket-") && strings.EqualFold(name[:len("Sec-WebSocket-")], "Sec-WebSocket-")
}

// isToken reports whether s is an RFC 7230 token, as header names and subprotocols are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}
