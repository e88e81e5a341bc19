// Package frame is the RFC 6455 frame codec of ecows: headers, masking, close payloads and
// UTF-8 validation. It uses no network and starts no goroutines, so it can parse a captured
// byte stream, build frames that test a peer, or sit under another connection type.
//
// The layers above it (transport, handshake) use only what is exported here. The examples
// are the best way to understand how to use the package.
//
// Decoding checks what holds for every connection: reserved opcodes, the top bit of a 64-bit
// length, and control frames that are fragmented or longer than 125 bytes. What depends on
// the connection (masking by role, RSV bits by negotiated extension, fragment order, size
// limits) is the caller's to check; ProtocolError and its variables name each violation with
// the close code the peer should get.
package frame
