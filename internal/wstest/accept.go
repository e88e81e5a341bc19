package wstest

import (
	"crypto/sha1"
	"encoding/base64"
)

// AcceptKey returns the Sec-WebSocket-Accept value that answers the Sec-WebSocket-Key key
// (RFC 6455 section 4.2.2). It is computed here, apart from handshake's own code, so that
// tests check handshake against a second reading of the RFC.
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}
