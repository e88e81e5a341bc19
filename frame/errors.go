package frame

import (
	"errors"
	"strconv"
)

// ProtocolError is a violation of RFC 6455: in bytes received from the peer, as DecodeHeader,
// ParseClose and the UTF-8 validator find them, or in the arguments of AppendClose. Code is
// the close code the peer should be sent before the connection is dropped when the violation
// is the peer's; Reason says what was wrong and is short enough to be the close reason.
// Package transport returns one only for the peer's violations: a send of its caller's that
// would break the protocol is a *transport.UsageError, which blames nobody on the wire.
type ProtocolError struct {
	Code   CloseCode
	Reason string
}

// Error implements error.
func (e *ProtocolError) Error() string {
	return "websocket: " + e.Reason + " (close " + strconv.Itoa(int(e.Code)) + ")"
}

// The violations the codec itself detects. They are *ProtocolError values, so errors.Is matches
// each one and errors.As yields the close code.
var (
	ErrReservedOpcode    = &ProtocolError{Code: CloseProtocolError, Reason: "reserved opcode"}
	ErrLengthMSB         = &ProtocolError{Code: CloseProtocolError, Reason: "64-bit payload length has its top bit set"}
	ErrControlTooLong    = &ProtocolError{Code: CloseProtocolError, Reason: "control frame payload over 125 bytes"}
	ErrControlFragmented = &ProtocolError{Code: CloseProtocolError, Reason: "fragmented control frame"}
	ErrClosePayload      = &ProtocolError{Code: CloseProtocolError, Reason: "close payload of 1 byte"}
	ErrCloseCode         = &ProtocolError{Code: CloseProtocolError, Reason: "invalid close code"}
	ErrInvalidUTF8       = &ProtocolError{Code: CloseInvalidPayload, Reason: "invalid UTF-8 in text"}
	ErrTooBig            = &ProtocolError{Code: CloseMessageTooBig, Reason: "payload over the size limit"}
)

// ErrShortHeader means the bytes given to DecodeHeader end before the header does; more bytes
// are needed, nothing is wrong with those seen so far.
var ErrShortHeader = errors.New("websocket: short frame header")

// ErrReasonTooLong means a close reason does not fit the 123 bytes a close frame leaves for it.
var ErrReasonTooLong = errors.New("websocket: close reason over 123 bytes")
