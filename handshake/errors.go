package handshake

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// HandshakeError is why Upgrade refused a request: Status is the HTTP status it answered with
// and Reason the one-line body it sent. Err holds an underlying cause when there is one. The
// Err variables below are HandshakeError values, and errors.Is matches any HandshakeError with
// the same Status and Reason, so a refusal can be told apart whatever its cause.
type HandshakeError struct {
	Status int
	Reason string
	Err    error
}

// Error implements error.
func (e *HandshakeError) Error() string {
	s := "websocket: upgrade refused (" + strconv.Itoa(e.Status) + "): " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause, if any.
func (e *HandshakeError) Unwrap() error { return e.Err }

// Is matches target when it is a *HandshakeError with the same Status and Reason.
func (e *HandshakeError) Is(target error) bool {
	t, ok := target.(*HandshakeError)
	return ok && t.Status == e.Status && t.Reason == e.Reason
}

// The reasons Upgrade refuses a request (RFC 6455 section 4.2.1 and this package's checks),
// each with the status it answers. ErrRequestBody refuses an HTTP/1.x request that announces
// a body (Content-Length above zero or any Transfer-Encoding), whose bytes would otherwise be
// read as WebSocket frames. ErrVersion's answer also carries Sec-WebSocket-Version: 13 and
// ErrMethod's Allow: GET, so that the client can tell what would have worked.
var (
	ErrMethod           = &HandshakeError{Status: http.StatusMethodNotAllowed, Reason: "WebSocket upgrade requires method GET"}
	ErrHTTPVersion      = &HandshakeError{Status: http.StatusBadRequest, Reason: "WebSocket upgrade requires HTTP/1.1 or later"}
	ErrRequestBody      = &HandshakeError{Status: http.StatusBadRequest, Reason: "WebSocket upgrade request must not have a body (Content-Length or Transfer-Encoding)"}
	ErrNoHost           = &HandshakeError{Status: http.StatusBadRequest, Reason: "missing Host header"}
	ErrUpgradeHeader    = &HandshakeError{Status: http.StatusBadRequest, Reason: "Upgrade header does not include websocket"}
	ErrConnectionHeader = &HandshakeError{Status: http.StatusBadRequest, Reason: "Connection header does not include upgrade"}
	ErrVersion          = &HandshakeError{Status: http.StatusUpgradeRequired, Reason: "Sec-WebSocket-Version must be 13"}
	ErrNoKey            = &HandshakeError{Status: http.StatusBadRequest, Reason: "missing Sec-WebSocket-Key header"}
	ErrBadKey           = &HandshakeError{Status: http.StatusBadRequest, Reason: "Sec-WebSocket-Key is not 16 bytes in base64"}
	ErrBadExtensions    = &HandshakeError{Status: http.StatusBadRequest, Reason: "malformed Sec-WebSocket-Extensions header"}
	ErrOrigin           = &HandshakeError{Status: http.StatusForbidden, Reason: "Origin not allowed"}
	ErrOriginPattern    = &HandshakeError{Status: http.StatusInternalServerError, Reason: "malformed pattern in ServerOptions.OriginPatterns"}
	ErrNotHijackable    = &HandshakeError{Status: http.StatusInternalServerError, Reason: "response writer does not support hijacking the connection"}
)

// StatusError is the error Dial returns when the server answers with a status other than
// 101 Switching Protocols. Response is that answer, also returned by Dial; its Body has been
// replaced by a reader over Body, the first bytes (at most 1 KiB) of what the server sent,
// which often says why.
type StatusError struct {
	Response *http.Response
	Body     []byte
}

// Error implements error.
func (e *StatusError) Error() string {
	s := "websocket: server answered " + e.Response.Status + " instead of 101 Switching Protocols"
	if body := strings.TrimSpace(string(e.Body)); body != "" {
		// The first line of the body usually says why; a long or binary body is cut.
		if i := strings.IndexAny(body, "\r\n"); i >= 0 {
			body = body[:i]
		}
		if len(body) > 200 {
			body = body[:200] + "..."
		}
		s += ": " + strconv.Quote(body)
	}
	return s
}

// ProxyError is the error Dial returns when the HTTP proxy refuses its CONNECT request, with
// a status outside 2xx (RFC 9110 section 9.3.6: any 2xx opens the tunnel). Response is that answer, without its body; its headers say more
// (Proxy-Authenticate for 407).
type ProxyError struct {
	Response *http.Response
}

// Error implements error.
func (e *ProxyError) Error() string {
	return "websocket: proxy refused CONNECT: " + e.Response.Status
}

// HeadTooLargeError is the error Dial returns when the head of the server's answer (or of the
// proxy's answer to CONNECT) is longer than Limit bytes, the DialOptions.MaxResponseHeaderBytes
// in force: an endless status line, an endless header line or endless header lines. Dial has
// read Limit bytes of it and no more. It matches ErrHeadTooLarge with errors.Is, and is
// wrapped with the step that failed.
type HeadTooLargeError struct {
	// Limit is the bound in bytes that the head went past.
	Limit int
}

// Error implements error.
func (e *HeadTooLargeError) Error() string {
	return "websocket: answer's head is longer than " + strconv.Itoa(e.Limit) + " bytes (DialOptions.MaxResponseHeaderBytes)"
}

// Is matches ErrHeadTooLarge, for callers that do not need the bound.
func (e *HeadTooLargeError) Is(target error) bool { return target == ErrHeadTooLarge }

// The reasons Dial fails, other than network errors, StatusError and ProxyError; most are
// wrapped with details. ErrHeadTooLarge matches every *HeadTooLargeError. ErrDialOptions
// covers options that cannot make a valid request: a header in DialOptions.Header that the
// handshake writes itself, or a subprotocol that is not a token. A network error is wrapped
// with the step that failed and, when ctx ended or Timeout expired, with ctx's error too, so
// errors.Is matches context.Canceled or context.DeadlineExceeded.
var (
	ErrURL                = errors.New("websocket: URL must be ws:// or wss:// with a host")
	ErrDialOptions        = errors.New("websocket: invalid DialOptions")
	ErrProxyScheme        = errors.New("websocket: proxy URL scheme must be http")
	ErrProxyData          = errors.New("websocket: proxy sent data after its CONNECT answer")
	ErrBadResponse        = errors.New("websocket: server's answer is not a valid HTTP response")
	ErrHeadTooLarge       = errors.New("websocket: answer's head is longer than DialOptions.MaxResponseHeaderBytes")
	ErrResponseUpgrade    = errors.New("websocket: server's answer lacks Upgrade: websocket")
	ErrResponseConnection = errors.New("websocket: server's answer lacks Connection: upgrade")
	ErrAccept             = errors.New("websocket: server's Sec-WebSocket-Accept does not match the key")
	ErrSubprotocol        = errors.New("websocket: server chose a subprotocol that was not offered")
	ErrExtension          = errors.New("websocket: server chose an extension that was not offered")
)
