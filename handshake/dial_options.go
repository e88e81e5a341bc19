package handshake

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ecows/ecows/transport"
)

// DefaultDialTimeout bounds a handshake when DialOptions.Timeout is zero: long enough for a
// slow TLS handshake across the world, short enough that a silent server does not hang the
// caller for the minutes a TCP connect can take.
const DefaultDialTimeout = 30 * time.Second

// DefaultMaxResponseHeaderBytes bounds the head of the server's answer when
// DialOptions.MaxResponseHeaderBytes is zero: far more than a real 101 carries (a few hundred
// bytes, a few KiB with cookies), little enough that a hostile server cannot make Dial buffer
// much. In a browser, which reads the answer itself, it has no effect.
const DefaultMaxResponseHeaderBytes = 64 << 10

// DialOptions configure Dial. The zero value (or nil) dials directly or through the
// environment's proxy, verifies TLS certificates against the system roots, offers no
// subprotocol and uses the transport defaults. Dial never modifies DialOptions or the
// tls.Config it points to. In a browser (GOOS=js GOARCH=wasm) the fields that the browser's
// WebSocket cannot honour, as each one's comment says, make Dial fail with ErrBrowser when
// they are set.
type DialOptions struct {
	// Options configure the Conn that Dial returns (MaxPayloadLen and the rest). In a
	// browser, Compression must be nil: the browser negotiates compression itself.
	transport.Options

	// Header holds extra request headers, such as Authorization or Cookie. A "Host" entry
	// replaces the Host header (for virtual hosts reached by address). Headers the handshake
	// writes itself (Upgrade, Connection, Sec-WebSocket-*) and Origin are refused with
	// ErrDialOptions rather than ignored, since sending them twice breaks the handshake.
	// Header must be empty in a browser: a page cannot set request headers (cookies for the
	// server's origin are sent by the browser).
	Header http.Header

	// Subprotocols are offered to the server in preference order; the server picks one or
	// none (Conn.Subprotocol). Each must be an RFC 7230 token.
	Subprotocols []string

	// Origin, when set, is sent as the Origin header, as a browser would for its page. It
	// must be empty in a browser, which sends the page's origin.
	Origin string

	// TLSConfig configures wss:// connections; Dial uses a clone. ServerName defaults to the
	// URL's host, and "h2" is removed from NextProtos because the handshake needs HTTP/1.1.
	// It must be nil in a browser, which verifies certificates itself.
	TLSConfig *tls.Config

	// InsecureSkipVerify turns off certificate verification for wss://, for tests and
	// self-signed development servers only; when set, it wins over TLSConfig.InsecureSkipVerify.
	// It must be false in a browser.
	InsecureSkipVerify bool

	// Timeout bounds the whole handshake (dial, proxy, TLS, request and response) as well as
	// ctx does: DefaultDialTimeout when zero, no bound but ctx when negative.
	Timeout time.Duration

	// Proxy returns the HTTP proxy to tunnel through with CONNECT for the handshake request,
	// or nil for a direct connection. The request's URL has scheme http or https in place of
	// ws or wss, so that http.ProxyFromEnvironment, the default when Proxy is nil, picks
	// HTTP_PROXY or HTTPS_PROXY (and skips localhost targets). Userinfo in the proxy URL is
	// sent as basic Proxy-Authorization. It must be nil in a browser, which chooses its own
	// route.
	Proxy func(*http.Request) (*url.URL, error)

	// MaxResponseHeaderBytes bounds the head of the server's answer, and of a proxy's answer
	// to CONNECT: the status line and the header lines through the blank line that ends
	// them, in bytes as sent. The bound holds for one endless line as well as for endless
	// lines: Dial reads at most this many bytes before the head is complete, then fails with
	// a *HeadTooLargeError without reading further. DefaultMaxResponseHeaderBytes when zero,
	// no bound when negative. It has no effect in a browser.
	MaxResponseHeaderBytes int

	// NetDial replaces the TCP dialer (a net.Dialer by default); it receives the address of
	// the proxy when there is one, and a ctx that carries the handshake's deadline. It must
	// be nil in a browser.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// HTTP2 chooses whether the WebSocket runs over HTTP/2 (RFC 8441): HTTP2Off (the zero
	// value) speaks HTTP/1.1, HTTP2Auto tries HTTP/2 for wss:// and falls back to HTTP/1.1,
	// HTTP2Require fails without it (and speaks h2c, HTTP/2 without TLS, for ws://). Both
	// offer h2 and http/1.1 in TLS ALPN, whatever TLSConfig.NextProtos says. It must be
	// HTTP2Off in a browser, which chooses the HTTP version itself.
	HTTP2 HTTP2Mode
}

// HTTP2Mode is DialOptions.HTTP2: whether Dial runs the WebSocket over HTTP/2 (RFC 8441).
type HTTP2Mode int

// The HTTP2Mode values. Over HTTP/2, WebSockets to one origin dialed with the same TLS and
// dialing options share one connection, which stays open for a while (90 s) after the last
// of them closes, for the next one.
const (
	// HTTP2Off dials HTTP/1.1, one connection per WebSocket.
	HTTP2Off HTTP2Mode = iota
	// HTTP2Auto offers h2 and http/1.1 through TLS ALPN for wss:// and uses HTTP/2 when the
	// server picks h2 and advertises extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL);
	// otherwise it dials HTTP/1.1, and keeps doing so for that server for 5 minutes without
	// trying again. ws:// URLs always dial HTTP/1.1.
	HTTP2Auto
	// HTTP2Require dials HTTP/2 only, over TLS for wss:// and as h2c (prior knowledge, no
	// TLS) for ws://, and fails with ErrNoHTTP2 when the server does not offer it.
	HTTP2Require
)

// handshakeContext bounds ctx by the handshake's timeout as DialOptions.Timeout says: zero
// for DefaultDialTimeout, negative for none.
func handshakeContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout == 0 {
		timeout = DefaultDialTimeout
	}
	if timeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}
