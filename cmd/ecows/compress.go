package main

import (
	"flag"
	"strings"

	"github.com/ecows/ecows/transport"
)

// compressValues are the values of -compress, in the order the usage lists them.
const compressValues = "off, on or takeover"

// compressFlag adds -compress to fs; compressOptions turns its value into Options.Compression.
func compressFlag(fs *flag.FlagSet) *string {
	return fs.String("compress", "off", "permessage-deflate (RFC 7692): `mode` off, on (no context kept between messages) or takeover (context kept)")
}

// compressOptions returns the Options.Compression for a -compress value, and false for a value
// that is not one of compressValues.
func compressOptions(mode string) (*transport.CompressionOptions, bool) {
	switch mode {
	case "off":
		return nil, true
	case "on":
		return &transport.CompressionOptions{}, true
	case "takeover":
		return &transport.CompressionOptions{ContextTakeover: true}, true
	}
	return nil, false
}

// deflateNegotiated reports whether extensions, a Conn's Extensions(), include
// permessage-deflate.
func deflateNegotiated(extensions string) bool {
	return strings.Contains(extensions, "permessage-deflate")
}
