package handshake

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/transport"
)

// ErrH2Protocol refuses an HTTP/2 CONNECT request whose :protocol pseudo-header is not
// websocket (RFC 8441 section 4), such as a plain CONNECT meant for a proxy.
var ErrH2Protocol = &HandshakeError{Status: http.StatusBadRequest, Reason: "CONNECT :protocol is not websocket"}

// upgradeH2 is Upgrade for an RFC 8441 extended CONNECT request: the WebSocket runs over the
// request's stream, so nothing is hijacked; the answer is 200 and the Conn reads the request
// body and writes the response.
func upgradeH2(w http.ResponseWriter, r *http.Request, opts *ServerOptions) (*transport.Conn, error) {
	if herr := checkH2Request(r, opts); herr != nil {
		return nil, refused(w, opts, herr, true)
	}
	setup := negotiate(r, opts)
	setup.HTTP2 = true

	h := w.Header()
	for name, values := range opts.Header {
		if !isToken(name) || handshakeHeader(name) {
			continue
		}
		for _, v := range values {
			h.Add(name, strings.NewReplacer("\r", " ", "\n", " ").Replace(v))
		}
	}
	if setup.Subprotocol != "" {
		h.Set("Sec-WebSocket-Protocol", setup.Subprotocol)
	}
	if setup.Extensions != "" {
		h.Set("Sec-WebSocket-Extensions", setup.Extensions)
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout and WriteTimeout bound the request, not the WebSocket that
	// follows; the Conn sets its own deadlines.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, fmt.Errorf("websocket: sending the 200 response: %w", err)
	}
	if b, ok := r.Body.(*heldBody); ok {
		b.upgraded.Store(true)
	}
	setup.Observer = accepted(r, opts, http.StatusOK)
	return transport.NewConn(newH2Stream(r, w, rc), transport.Server, setup, &opts.Options), nil
}

// checkH2Request applies RFC 8441 section 5: the checks of RFC 6455 section 4.2.1 that do
// not concern HTTP/1.1's Upgrade mechanism (version, Origin, extensions), in the same order
// and with the same errors as checkRequest. There is no key: the stream itself proves that
// the server understood the request.
func checkH2Request(r *http.Request, opts *ServerOptions) *HandshakeError {
	h := r.Header
	switch {
	case !strings.EqualFold(h.Get(":protocol"), "websocket"):
		return ErrH2Protocol
	case r.Host == "":
		return ErrNoHost
	}
	if v := h["Sec-Websocket-Version"]; len(v) != 1 || strings.Trim(v[0], " \t") != "13" {
		return ErrVersion
	}
	if err := checkOrigin(r, opts); err != nil {
		return err
	}
	return checkExtensions(h)
}

// KeepHTTP2Streams wraps a handler that returns before the Conn it upgraded is done, as one
// that serves the Conn from a goroutine of its own does: for a WebSocket over HTTP/2, whose
// stream ends when the handler returns, it holds the request open until the Conn is closed
// or the client resets the stream. Other requests, and requests it refused, pass through as
// they are. It knows the Conn by the request body, so a middleware inside it that replaces
// r.Body hides the Conn from it.
func KeepHTTP2Streams(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Method != http.MethodConnect {
			h.ServeHTTP(w, r)
			return
		}
		b := &heldBody{ReadCloser: r.Body, closed: make(chan struct{})}
		r = r.WithContext(r.Context()) // a shallow copy, so that the caller's r keeps its Body
		r.Body = b
		h.ServeHTTP(w, r)
		if b.upgraded.Load() {
			select {
			case <-b.closed:
			case <-r.Context().Done():
			}
		}
	})
}

// heldBody is the request body KeepHTTP2Streams passes on: Upgrade marks it upgraded, and
// the Conn's stream closes it when it ends.
type heldBody struct {
	io.ReadCloser
	upgraded atomic.Bool
	once     sync.Once
	closed   chan struct{}
}

func (b *heldBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { close(b.closed) })
	return err
}
