package transport

import (
	"errors"
	"net"
	"strconv"

	"github.com/ecows/ecows/frame"
)

// ErrClosed is returned by calls made after this side has closed the connection or sent its
// close frame. It also matches net.ErrClosed (errors.Is), so code written for net.Conn, or
// for other WebSocket packages, that tests for net.ErrClosed recognises it.
var ErrClosed error = closedError{}

// closedError is the type of ErrClosed: a plain sentinel that unwraps to net.ErrClosed.
type closedError struct{}

func (closedError) Error() string { return "websocket: connection closed" }

func (closedError) Unwrap() error { return net.ErrClosed }

// ErrDeadlineUnsupported is returned by calls with a timeout on a connection whose underlying
// stream cannot set deadlines.
var ErrDeadlineUnsupported = errors.New("websocket: underlying stream has no deadlines")

// UsageError reports a call refused for the caller's own mistake: a send that would break RFC
// 6455 or one of the Conn's limits, or a read that would drop part of a message another read
// level is in the middle of (ErrReadMixed). It is never the peer's fault, so it carries no close code
// (CloseStatus returns 0) and, unlike a *frame.ProtocolError, it is not the reason to send the
// peer 1002 or 1007: package middleware ends a connection whose handler returns one with 1011
// Internal Error. Each rule has one of the sentinels below, which errors.Is tells apart.
// Nothing is sent when one is returned, except by the writer of NextWriter, which says what
// becomes of a message it refuses to go on with.
type UsageError struct {
	Reason string
}

// Error implements error.
func (e *UsageError) Error() string { return "websocket: " + e.Reason }

// The rules a send can break, as *UsageError values.
var (
	// ErrPayloadTooLarge: a frame's payload is over MaxPayloadLen (WriteMessage and NextWriter
	// fragment instead).
	ErrPayloadTooLarge = &UsageError{Reason: "payload over MaxPayloadLen"}
	// ErrMessageTooLarge: a message is over MaxMessageLen, the limit the Conn applies to what
	// it receives, so that an ecows peer with the same options would refuse it with 1009.
	ErrMessageTooLarge = &UsageError{Reason: "message over MaxMessageLen"}
	// ErrControlPayload: a control frame's payload is over 125 bytes.
	ErrControlPayload = &UsageError{Reason: "control payload over 125 bytes"}
	// ErrControlFragmented: a control frame without FIN.
	ErrControlFragmented = &UsageError{Reason: "control frame not final"}
	// ErrFragmentOrder: a continuation frame with no fragmented message in progress, or a
	// text or binary frame inside one.
	ErrFragmentOrder = &UsageError{Reason: "data frame out of order (message in progress or none to continue)"}
	// ErrOpcode: an opcode that is undefined, or not sendable by the call.
	ErrOpcode = &UsageError{Reason: "opcode not sendable"}
	// ErrInvalidUTF8: text that is not valid UTF-8. frame.ErrInvalidUTF8 is the peer's.
	ErrInvalidUTF8 = &UsageError{Reason: "text not valid UTF-8"}
	// ErrCloseCode: a close code that may not be sent (frame.CloseCode.Valid), such as 1005,
	// 1006 or 999. frame.ErrCloseCode is the peer's.
	ErrCloseCode = &UsageError{Reason: "close code not sendable"}
	// ErrCloseReason: a close reason over 123 bytes or not valid UTF-8.
	ErrCloseReason = &UsageError{Reason: "close reason over 123 bytes or not UTF-8"}
	// ErrClosePayload: a close frame payload of 1 byte, too short for a code.
	ErrClosePayload = &UsageError{Reason: "close payload of 1 byte"}
)

// closeUsage maps what frame.AppendClose or frame.ParseClose refuses in a close frame this
// side was asked to send to the matching *UsageError: the frame package's errors there are
// the peer's protocol errors.
func closeUsage(err error) error {
	switch err {
	case frame.ErrCloseCode:
		return ErrCloseCode
	case frame.ErrClosePayload:
		return ErrClosePayload
	case frame.ErrReasonTooLong, frame.ErrInvalidUTF8:
		return ErrCloseReason
	}
	return err
}

// CloseError reports the end of a connection by a close frame from the peer (Code and Reason
// as sent, CloseNoStatus when the frame had none) or an abnormal end (Code is
// frame.CloseAbnormal and Err holds the cause, such as io.EOF or a reset).
type CloseError struct {
	Code   frame.CloseCode
	Reason string
	Err    error
}

// Error implements error.
func (e *CloseError) Error() string {
	s := "websocket: closed with " + strconv.Itoa(int(e.Code)) + " (" + e.Code.String() + ")"
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause of an abnormal end.
func (e *CloseError) Unwrap() error { return e.Err }

// CloseStatus returns the close code carried by err: the peer's code for a *CloseError, the
// code sent to the peer for a *frame.ProtocolError (a fault of the peer's), and 0 for
// anything else, a *UsageError included.
func CloseStatus(err error) frame.CloseCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var pe *frame.ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}

// ErrReadMixed is returned by a read call that would take over a message another read level
// is in the middle of: ReadMessage, NextReader or RecvFrame while a ReadMessage that timed
// out holds part of a message (only ReadMessage continues it), and ReadMessage or NextReader
// once RecvFrame has returned part of a message or stopped inside one (RecvFrame reads the
// rest). Nothing is read or dropped, and the Conn stays usable.
var ErrReadMixed = &UsageError{Reason: "message in progress at another read level"}
