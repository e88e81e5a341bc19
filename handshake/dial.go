//go:build !(js && wasm)

package handshake

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ecows/ecows/transport"
)

// maxErrorBody is how much of a non-101 answer's body a StatusError keeps.
const maxErrorBody = 1024

var defaultDialOptions DialOptions

// Dial opens a WebSocket connection to a ws:// or wss:// URL, the seed's websocket.connect: it
// connects (through a proxy when Proxy says so), runs TLS for wss://, sends the opening
// handshake and checks the server's answer as RFC 6455 section 4.1 requires. It returns the
// Conn and the server's response; the response is also returned with a *StatusError when the
// server answered with another status than 101, and with the errors of the answer's checks.
// The errors are documented where they are declared; the connection is closed on every
// failure. An answer whose head is longer than opts.MaxResponseHeaderBytes fails with a
// *HeadTooLargeError once the bound is reached.
//
// For wss:// the response's TLS field holds the connection's tls.ConnectionState, as net/http
// sets it: the peer's certificates, the version, and NegotiatedProtocol when TLSConfig offered
// ALPN protocols ("h2" is never offered: the handshake needs HTTP/1.1).
//
// ctx and opts.Timeout bound the handshake only; once Dial returns, the Conn has no deadline.
// With opts.Compression set, Dial offers permessage-deflate (RFC 7692) and the Conn uses it
// if the server accepts; an answer that names an extension not offered, or accepts the offer
// with parameters the client cannot honour, fails with ErrExtension.
func Dial(ctx context.Context, uri string, opts *DialOptions) (*transport.Conn, *http.Response, error) {
	if opts == nil {
		opts = &defaultDialOptions
	}
	if opts.HTTP2 != HTTP2Off {
		if c, resp, err, done := dialH2(ctx, uri, opts); done {
			return c, resp, err
		}
	}
	req, key, err := newRequest(uri, opts)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := handshakeContext(ctx, opts.Timeout)
	defer cancel()
	raw, proxyURL, err := connect(ctx, req, opts)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(aLongTimeAgo) })

	nc, resp, setup, err := handshake(ctx, raw, proxyURL, req, key, opts)
	if !stop() && err == nil {
		// ctx ended as the handshake finished: the interrupt may still land on the conn.
		err = stepError(ctx, "handshake", context.Cause(ctx))
	}
	if err != nil {
		raw.Close()
		return nil, resp, err
	}
	// An error here means the stream is already gone, which the Conn reports on first use;
	// the peer may have sent its frames and closed (net.Pipe then refuses deadlines).
	raw.SetDeadline(time.Time{})
	return transport.NewConn(nc, transport.Client, setup, &opts.Options), resp, nil
}

// newRequest builds the handshake request for uri and returns it with its key. Its URL has
// the http or https scheme that matches ws or wss.
func newRequest(uri string, opts *DialOptions) (*http.Request, string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrURL, err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return nil, "", fmt.Errorf("%w: scheme %q", ErrURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, "", fmt.Errorf("%w: no host in %q", ErrURL, uri)
	}
	// RFC 6455 section 3 has no fragments, and userinfo must not reach the Host header.
	u.Fragment, u.RawFragment, u.User = "", "", nil

	req := &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(opts.Header)+6),
		Host:       u.Host,
	}
	for name, values := range opts.Header {
		switch cname := http.CanonicalHeaderKey(name); {
		case cname == "Host":
			if len(values) > 0 {
				req.Host = values[0]
			}
		case cname == "Origin" || handshakeHeader(cname):
			return nil, "", fmt.Errorf("%w: Header sets %s, which the handshake writes", ErrDialOptions, name)
		default:
			req.Header[cname] = append(req.Header[cname], values...)
		}
	}
	for _, p := range opts.Subprotocols {
		if !isToken(p) {
			return nil, "", fmt.Errorf("%w: subprotocol %q is not a token", ErrDialOptions, p)
		}
	}

	var raw [16]byte
	rand.Read(raw[:]) // never fails on supported platforms (Go 1.24+ crashes instead)
	key := base64.StdEncoding.EncodeToString(raw[:])
	// The map keys are spelled as RFC 6455 does, which is how req.Write puts them on the wire.
	req.Header["Upgrade"] = []string{"websocket"}
	req.Header["Connection"] = []string{"Upgrade"}
	req.Header["Sec-WebSocket-Key"] = []string{key}
	req.Header["Sec-WebSocket-Version"] = []string{"13"}
	if len(opts.Subprotocols) > 0 {
		req.Header["Sec-WebSocket-Protocol"] = []string{strings.Join(opts.Subprotocols, ", ")}
	}
	if opts.Origin != "" {
		req.Header["Origin"] = []string{opts.Origin}
	}
	if opts.Compression != nil {
		req.Header["Sec-WebSocket-Extensions"] = []string{offerDeflate(opts.Compression)}
	}
	return req, key, nil
}

// connect dials the server, or the proxy that opts choose, which it returns for handshake to
// open the tunnel through.
func connect(ctx context.Context, req *http.Request, opts *DialOptions) (net.Conn, *url.URL, error) {
	proxy := opts.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	proxyURL, err := proxy(req)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: choosing a proxy: %w", err)
	}
	dialAddr := hostPort(req.URL)
	if proxyURL != nil {
		if proxyURL.Scheme != "http" {
			return nil, nil, fmt.Errorf("%w: %q", ErrProxyScheme, proxyURL.Scheme)
		}
		dialAddr = hostPort(proxyURL)
	}
	netDial := opts.NetDial
	if netDial == nil {
		var d net.Dialer
		netDial = d.DialContext
	}
	nc, err := netDial(ctx, "tcp", dialAddr)
	if err != nil {
		return nil, nil, stepError(ctx, "dial", err)
	}
	return nc, proxyURL, nil
}

// handshake runs everything after the TCP connection: the CONNECT tunnel when proxyURL is
// set, TLS for wss, the request and the checks of the answer. It returns the stream for the
// Conn (raw, or TLS over it) and what the Conn must know.
func handshake(ctx context.Context, raw net.Conn, proxyURL *url.URL, req *http.Request, key string, opts *DialOptions) (net.Conn, *http.Response, transport.Setup, error) {
	var setup transport.Setup
	if proxyURL != nil {
		if err := connectTunnel(ctx, raw, proxyURL, hostPort(req.URL), opts.MaxResponseHeaderBytes); err != nil {
			return nil, nil, setup, err
		}
	}
	nc := raw
	if req.URL.Scheme == "https" {
		tc := tls.Client(raw, tlsConfig(req.URL, opts))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, setup, stepError(ctx, "TLS handshake", err)
		}
		nc = tc
	}
	if err := req.Write(nc); err != nil {
		return nil, nil, setup, stepError(ctx, "writing the handshake request", err)
	}
	resp, br, err := readResponse(nc, req, opts.MaxResponseHeaderBytes)
	if tc, ok := nc.(*tls.Conn); ok && err == nil {
		st := tc.ConnectionState()
		resp.TLS = &st
	}
	if err != nil {
		var ne net.Error
		var he *HeadTooLargeError
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) && !errors.As(err, &he) {
			err = fmt.Errorf("%w: %w", ErrBadResponse, err)
		}
		return nil, nil, setup, stepError(ctx, "reading the handshake response", err)
	}
	setup, err = checkResponse(resp, key, opts)
	if se, ok := err.(*StatusError); ok {
		se.Body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(se.Body))
	}
	if err != nil {
		return nil, resp, setup, err
	}
	if n := br.Buffered(); n > 0 {
		setup.Buffered, _ = br.Peek(n) // NewConn copies them
	}
	return nc, resp, setup, nil
}

// connectTunnel asks the proxy on nc for a tunnel to addr; maxHead bounds the head of the
// proxy's answer as it does the server's.
func connectTunnel(ctx context.Context, nc net.Conn, proxyURL *url.URL, addr string, maxHead int) error {
	creq := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if u := proxyURL.User; u != nil {
		password, _ := u.Password()
		creq.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+password)))
	}
	if err := creq.Write(nc); err != nil {
		return stepError(ctx, "writing the CONNECT request", err)
	}
	resp, br, err := readResponse(nc, creq, maxHead)
	if err != nil {
		return stepError(ctx, "reading the CONNECT response", err)
	}
	resp.Body.Close()
	resp.Body = http.NoBody
	// RFC 9110 section 9.3.6: any 2xx answer means the tunnel is open.
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &ProxyError{Response: resp}
	}
	if br.Buffered() > 0 {
		// The server speaks only after the request, so these bytes cannot be its; TLS or
		// the handshake would read past them.
		return ErrProxyData
	}
	return nil
}

// readResponse reads the answer to req from r, allowing at most maxHead bytes (the
// DialOptions.MaxResponseHeaderBytes convention: zero for the default, negative for no bound)
// before its head is complete. net/http's parser has no such bound, so it reads through a
// headLimiter, as net/http's server does for request heads; the bound is lifted once the head
// is parsed, for the body of a non-101 answer. The returned reader holds what was read past
// the head.
func readResponse(r io.Reader, req *http.Request, maxHead int) (*http.Response, *bufio.Reader, error) {
	if maxHead == 0 {
		maxHead = DefaultMaxResponseHeaderBytes
	}
	lr := &headLimiter{r: r, n: int64(maxHead)}
	br := bufio.NewReader(lr)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if lr.hit {
			// The parser may pass the error on or replace it; either way the bound is why.
			err = &HeadTooLargeError{Limit: maxHead}
		}
		return nil, br, err
	}
	lr.n = -1
	return resp, br, nil
}

// headLimiter reads from r until n more bytes have been read, then fails without reading;
// a negative n reads without bound. hit records that the bound stopped a read.
type headLimiter struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *headLimiter) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		l.hit = true
		return 0, errHeadLimit
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// errHeadLimit is what a headLimiter's reads fail with at the bound, for the parser to pass
// on; readResponse replaces it with a *HeadTooLargeError that names the bound.
var errHeadLimit = errors.New("websocket: response head bound reached")

// tlsConfig returns the TLS configuration for u, a clone of the user's.
func tlsConfig(u *url.URL, opts *DialOptions) *tls.Config {
	cfg := opts.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	if opts.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	if slices.Contains(cfg.NextProtos, "h2") {
		cfg.NextProtos = slices.DeleteFunc(slices.Clone(cfg.NextProtos), func(p string) bool { return p == "h2" })
	}
	return cfg
}

// hostPort returns u's host:port, with the scheme's default port when u has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// checkResponse applies RFC 6455 section 4.1 to the server's answer and returns what the
// Conn must know of it: the chosen subprotocol and the extensions agreed on.
func checkResponse(resp *http.Response, key string, opts *DialOptions) (transport.Setup, error) {
	var setup transport.Setup
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return setup, &StatusError{Response: resp}
	}
	h := resp.Header
	if !hasToken(h["Upgrade"], "websocket") {
		return setup, ErrResponseUpgrade
	}
	if !hasToken(h["Connection"], "upgrade") {
		return setup, ErrResponseConnection
	}
	var buf [28]byte
	if accept := h["Sec-Websocket-Accept"]; len(accept) != 1 || strings.Trim(accept[0], " \t") != string(appendAccept(buf[:0], key)) {
		return setup, ErrAccept
	}
	return checkAgreement(setup, h, opts)
}

// checkAgreement checks the subprotocol and the extensions of the server's answer h against
// what opts offered, over HTTP/1.1 and HTTP/2 alike, and records them in setup.
func checkAgreement(setup transport.Setup, h http.Header, opts *DialOptions) (transport.Setup, error) {
	switch protos := h["Sec-Websocket-Protocol"]; len(protos) {
	case 0:
	case 1:
		setup.Subprotocol = strings.Trim(protos[0], " \t")
		if setup.Subprotocol != "" && !slices.Contains(opts.Subprotocols, setup.Subprotocol) {
			return setup, fmt.Errorf("%w: %q", ErrSubprotocol, setup.Subprotocol)
		}
	default:
		return setup, fmt.Errorf("%w: several Sec-WebSocket-Protocol headers", ErrSubprotocol)
	}
	exts := h["Sec-Websocket-Extensions"]
	var err error
	if setup.Deflate, err = checkDeflate(exts, opts.Compression); err != nil {
		return setup, err
	}
	if setup.Deflate.Enabled {
		setup.Extensions = strings.Trim(strings.Join(exts, ", "), " \t,")
	}
	return setup, nil
}

// stepError wraps err from a handshake step with the step's name and, when the handshake's
// ctx has ended (or its deadline is what the I/O ran into), with ctx's error too.
func stepError(ctx context.Context, step string, err error) error {
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("websocket: %s: %w: %w", step, cerr, err)
	}
	return fmt.Errorf("websocket: %s: %w", step, err)
}
