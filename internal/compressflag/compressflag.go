// Package compressflag holds the -compress flag that ecows serve and dial and the Autobahn
// example programs share, so that a mode means the same permessage-deflate set-up in each.
package compressflag

import (
	"flag"

	"github.com/ecows/ecows/transport"
)

// Values are the values of -compress, in the order the usage lists them.
const Values = "off, on or takeover"

// Flag adds -compress to fs; Options turns its value into Options.Compression.
func Flag(fs *flag.FlagSet) *string {
	return fs.String("compress", "off", "permessage-deflate (RFC 7692): `mode` off, on (no context kept between messages) or takeover (context kept)")
}

// Options returns the Options.Compression for a -compress value, and false for a value
// that is not one of Values.
func Options(mode string) (*transport.CompressionOptions, bool) {
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
