//go:build !(js && wasm)

package handshake

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/ecows/ecows/transport"
)

// ErrNoHTTP2 is the error Dial returns with HTTP2Require when the server does not speak
// HTTP/2 (its ALPN answer lacks h2) or does not advertise extended CONNECT; it is wrapped
// with the reason.
var ErrNoHTTP2 = errors.New("websocket: server does not offer WebSockets over HTTP/2 (RFC 8441)")

// errALPN is what the connection dialer returns when the server's ALPN answer is not h2.
var errALPN = errors.New("websocket: server did not choose h2 in ALPN")

// h2NoFallbackFor is how long HTTP2Auto remembers that a server lacks WebSockets over HTTP/2.
const h2NoFallbackFor = 5 * time.Minute

// h2Key says which WebSockets may share HTTP/2 connections: those whose connections would
// be dialed alike. Functions cannot be compared, so options with NetDial or Proxy set share
// only with themselves.
type h2Key struct {
	scheme, addr string
	tls          *tls.Config
	insecure     bool
	opts         *DialOptions
}

var (
	h2Mu         sync.Mutex
	h2Transports = map[h2Key]*http2.Transport{}
	h2Lacking    = map[h2Key]time.Time{} // servers without it, for HTTP2Auto, and since when
)

// dialH2 is Dial over HTTP/2. done is false when Dial should go on with HTTP/1.1 instead.
func dialH2(ctx context.Context, uri string, opts *DialOptions) (c *transport.Conn, resp *http.Response, err error, done bool) {
	req, _, err := newRequest(uri, opts)
	if err != nil {
		return nil, nil, err, true
	}
	if req.URL.Scheme == "http" && opts.HTTP2 != HTTP2Require {
		return nil, nil, nil, false
	}
	key := h2Key{scheme: req.URL.Scheme, addr: hostPort(req.URL), tls: opts.TLSConfig, insecure: opts.InsecureSkipVerify}
	if opts.NetDial != nil || opts.Proxy != nil {
		key.opts = opts
	}
	tr, ok := transportFor(key, opts)
	if !ok {
		return nil, nil, nil, false
	}

	ctx, endHandshake := handshakeContext(ctx, opts.Timeout)
	defer endHandshake()
	// The request's context lives as long as the stream: ctx bounds only the handshake.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)

	pr, pw := io.Pipe()
	req = req.WithContext(sctx)
	req.Method = http.MethodConnect
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
	req.Body = pr
	h := req.Header
	delete(h, "Upgrade")
	delete(h, "Connection")
	delete(h, "Sec-WebSocket-Key")
	h[":protocol"] = []string{"websocket"}

	resp, err = tr.RoundTrip(req)
	if !stop() && err == nil {
		resp.Body.Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		cancel()
		pw.Close()
		if errors.Is(err, errALPN) || strings.Contains(err.Error(), "extended connect not supported") {
			// x/net does not export the error for a server that does not advertise
			// extended CONNECT; its text has been the same since it came (v0.33.0).
			if opts.HTTP2 == HTTP2Auto {
				h2Mu.Lock()
				h2Lacking[key] = time.Now()
				h2Mu.Unlock()
				return nil, nil, nil, false
			}
			return nil, nil, fmt.Errorf("%w: %w", ErrNoHTTP2, err), true
		}
		return nil, nil, stepError(ctx, "HTTP/2 extended CONNECT", err), true
	}
	setup, err := checkH2Response(resp, opts)
	if err != nil {
		if se, ok := err.(*StatusError); ok {
			se.Body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(se.Body))
		} else {
			resp.Body.Close()
		}
		cancel()
		pw.Close()
		return nil, resp, err, true
	}
	s := &h2ClientStream{h2Reader: h2Reader{body: resp.Body, res: make(chan h2Result, 1)}, pw: pw, cancel: cancel}
	s.wd.abort = func() {
		pw.CloseWithError(errStreamAborted)
		cancel()
	}
	return transport.NewConn(s, transport.Client, setup, &opts.Options), resp, nil, true
}

// errStreamAborted ends a request body whose write ran past its deadline.
var errStreamAborted = errors.New("websocket: HTTP/2 stream reset after a write ran past its deadline")

// transportFor returns the HTTP/2 transport for the connections key describes, or false when
// HTTP2Auto has lately found that the server lacks WebSockets over HTTP/2.
func transportFor(key h2Key, opts *DialOptions) (*http2.Transport, bool) {
	h2Mu.Lock()
	defer h2Mu.Unlock()
	if since, ok := h2Lacking[key]; ok && opts.HTTP2 == HTTP2Auto {
		if time.Since(since) < h2NoFallbackFor {
			return nil, false
		}
		delete(h2Lacking, key)
	}
	if tr := h2Transports[key]; tr != nil {
		return tr, true
	}
	tr := &http2.Transport{
		AllowHTTP:       key.scheme == "http",
		IdleConnTimeout: 90 * time.Second,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dialH2Conn(ctx, key, opts)
		},
	}
	h2Transports[key] = tr
	return tr, true
}

// dialH2Conn opens a connection for HTTP/2: TCP (through the proxy that opts choose), then TLS
// with h2 offered in ALPN, or no TLS for h2c.
func dialH2Conn(ctx context.Context, key h2Key, opts *DialOptions) (net.Conn, error) {
	u := &url.URL{Scheme: key.scheme, Host: key.addr}
	raw, proxyURL, err := connect(ctx, &http.Request{URL: u, Header: http.Header{}}, opts)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(aLongTimeAgo) })
	nc, err := h2ConnHandshake(ctx, raw, proxyURL, u, opts)
	if !stop() && err == nil {
		err = stepError(ctx, "HTTP/2 connection", context.Cause(ctx))
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return nc, nil
}

// h2ConnHandshake opens the proxy's tunnel when there is one, then runs TLS for https.
func h2ConnHandshake(ctx context.Context, raw net.Conn, proxyURL *url.URL, u *url.URL, opts *DialOptions) (net.Conn, error) {
	if proxyURL != nil {
		if err := connectTunnel(ctx, raw, proxyURL, u.Host, opts.MaxResponseHeaderBytes); err != nil {
			return nil, err
		}
	}
	if u.Scheme == "http" {
		return raw, nil
	}
	cfg := tlsConfig(u, opts)
	// http/1.1 is offered with HTTP2Require too: a server that speaks only it would end the
	// TLS handshake with an alert, which tells less than its choice does.
	cfg.NextProtos = []string{"h2", "http/1.1"}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, stepError(ctx, "TLS handshake", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		return nil, fmt.Errorf("%w (it chose %q)", errALPN, p)
	}
	return tc, nil
}

// checkH2Response applies RFC 8441 section 5 to the server's answer: 200, and the agreement
// on subprotocol and extensions as checkResponse checks it; there is no key to check.
func checkH2Response(resp *http.Response, opts *DialOptions) (transport.Setup, error) {
	setup := transport.Setup{HTTP2: true}
	if resp.StatusCode != http.StatusOK {
		return setup, &StatusError{Response: resp}
	}
	return checkAgreement(setup, resp.Header, opts)
}

// h2ClientStream is the client's side of an extended CONNECT stream: the response body for
// reads, the request body (a pipe that the HTTP/2 transport sends from) for writes.
type h2ClientStream struct {
	h2Reader
	wd     h2WriteDeadline
	pw     *io.PipeWriter
	cancel context.CancelFunc // ends the request, and with it the stream
}

// Write sends p on the stream.
func (s *h2ClientStream) Write(p []byte) (int, error) {
	if err := s.wd.begin(); err != nil {
		return 0, err
	}
	n, err := s.pw.Write(p)
	return n, s.wd.end(err)
}

// SetWriteDeadline sets the write deadline.
func (s *h2ClientStream) SetWriteDeadline(t time.Time) error {
	s.wd.set(t)
	return nil
}

// Close ends the stream: the request body ends (END_STREAM), then the request is cancelled,
// which resets the stream if the server has not ended it, and frees what it holds.
func (s *h2ClientStream) Close() error {
	s.wd.set(time.Time{})
	s.pw.Close()
	err := s.body.Close()
	s.cancel()
	return err
}

// CloseIdleConnections closes the HTTP/2 connections that Dial keeps for later WebSockets and
// that carry none now, as http.Transport's method of the same name does; WebSockets open on
// the others go on. It also forgets which servers HTTP2Auto found without WebSockets over
// HTTP/2. A client that is done dialing calls it, so that it holds no connection and no
// goroutine for the idle timeout (90 s).
func CloseIdleConnections() {
	h2Mu.Lock()
	defer h2Mu.Unlock()
	for key, tr := range h2Transports {
		tr.CloseIdleConnections()
		delete(h2Transports, key)
	}
	clear(h2Lacking)
}
