// Package xconnect turns on extended CONNECT (RFC 8441) in net/http's HTTP/2 server for the
// program that imports it (the ecows command, and the test binaries of the WebSocket over
// HTTP/2 tests), as GODEBUG=http2xconnect=1 does, unless GODEBUG already sets
// http2xconnect. net/http reads the variable from the environment in its own init function,
// so it must be set before that runs: this package imports neither net/http nor anything
// that does, and its import path sorts before "net/http", so Go's initialization order (by
// import path among packages whose dependencies are ready, Go 1.21 and later) runs its init
// first.
package xconnect

import (
	"os"
	"strings"
)

func init() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "http2xconnect=") {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	os.Setenv("GODEBUG", godebug+"http2xconnect=1")
}
