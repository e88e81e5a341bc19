package handshake

import (
	"errors"
	"net/http"

	"github.com/ecows/ecows/transport"
)

// refusalLabels are the reasons metrics give the refusals: short and from a fixed set, so
// that they make bounded labels.
var refusalLabels = []struct {
	err   *HandshakeError
	label string
}{
	{ErrMethod, "method"},
	{ErrHTTPVersion, "http_version"},
	{ErrRequestBody, "body"},
	{ErrNoHost, "host"},
	{ErrUpgradeHeader, "upgrade_header"},
	{ErrConnectionHeader, "connection_header"},
	{ErrVersion, "version"},
	{ErrNoKey, "key"},
	{ErrBadKey, "key"},
	{ErrBadExtensions, "extensions"},
	{ErrOrigin, "origin"},
	{ErrOriginPattern, "origin_pattern"},
	{ErrNotHijackable, "hijack"},
	{ErrH2Protocol, "protocol"},
}

// refusalLabel returns the metrics reason for e.
func refusalLabel(e *HandshakeError) string {
	for _, l := range refusalLabels {
		if errors.Is(e, l.err) {
			return l.label
		}
	}
	return "other"
}

// refused answers a refused request, records it, and returns e.
func refused(w http.ResponseWriter, opts *ServerOptions, e *HandshakeError, answer bool) *HandshakeError {
	if answer {
		refuse(w, e)
	}
	if opts.Metrics != nil {
		opts.Metrics.Handshake(opts.Route, e.Status, refusalLabel(e))
	}
	return e
}

// accepted records an accepted request, answered with status, and returns the Observer of
// its connection.
func accepted(r *http.Request, opts *ServerOptions, status int) transport.Observer {
	if opts.Metrics == nil {
		return nil
	}
	opts.Metrics.Handshake(opts.Route, status, "")
	return opts.Metrics.Conn(r, opts.Route)
}
