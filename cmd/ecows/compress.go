package main

import "strings"

// deflateNegotiated reports whether extensions, a Conn's Extensions(), include
// permessage-deflate.
func deflateNegotiated(extensions string) bool {
	return strings.Contains(extensions, "permessage-deflate")
}
