package reconnect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// Transient is the default Options.Retry: it reports whether err, which ended a connection or
// an attempt, may pass by itself, so that another attempt is worth making.
//
// Final (false): a refused handshake with a status below 500 other than 408 Request Timeout
// and 429 Too Many Requests (400, 401, 403 and 404 among them), a proxy refusing CONNECT
// likewise (407), a server's answer that breaks the handshake (handshake.ErrAccept,
// ErrSubprotocol, ErrExtension and the other handshake sentinels), invalid options or URL, a
// certificate that does not verify, close codes 1002 Protocol Error, 1003 Unsupported Data,
// 1007 Invalid Payload, 1008 Policy Violation, 1009 Message Too Big, 1010 Mandatory Extension
// and 1015 TLS Handshake, whether the peer sent them or this side did for the peer's fault,
// a *transport.UsageError (the application's own mistake), and context.Canceled.
//
// Transient (true): everything else, among it timeouts (context.DeadlineExceeded from the dial
// timeout included), resets, refused connections, an early EOF, 5xx answers, the keepalive's
// transport.ErrPongTimeout, and close codes 1000, 1001 Going Away, 1005, 1006 Abnormal,
// 1011 Internal Error, 1012 Service Restart, 1013 Try Again Later, 1014 Bad Gateway and the
// application's 3000-4999.
func Transient(err error) bool {
	var ue *transport.UsageError
	var se *handshake.StatusError
	var pe *handshake.ProxyError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ue), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, transport.ErrPongTimeout):
		return true
	case errors.As(err, &se):
		return statusTransient(se.Response.StatusCode)
	case errors.As(err, &pe):
		return statusTransient(pe.Response.StatusCode)
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ce):
		return false
	}
	for _, final := range finalDial {
		if errors.Is(err, final) {
			return false
		}
	}
	switch transport.CloseStatus(err) {
	case frame.CloseProtocolError, frame.CloseUnsupportedData, frame.CloseInvalidPayload,
		frame.ClosePolicyViolation, frame.CloseMessageTooBig, frame.CloseMandatoryExtension,
		frame.CloseTLSHandshake:
		return false
	}
	return true
}

// finalDial are the handshake errors another attempt would meet again.
var finalDial = []error{
	handshake.ErrURL, handshake.ErrDialOptions, handshake.ErrProxyScheme, handshake.ErrHeadTooLarge,
	handshake.ErrResponseUpgrade, handshake.ErrResponseConnection, handshake.ErrAccept,
	handshake.ErrSubprotocol, handshake.ErrExtension,
}

func statusTransient(code int) bool {
	return code >= 500 || code == 408 || code == 429
}
