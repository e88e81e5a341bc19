package transport

import (
	"errors"
	"strconv"

	"github.com/ecows/ecows/frame"
)

// ErrClosed is returned by calls made after this side has closed the connection or sent its
// close frame.
var ErrClosed = errors.New("websocket: connection closed")

// ErrDeadlineUnsupported is returned by calls with a timeout on a connection whose underlying
// stream cannot set deadlines.
var ErrDeadlineUnsupported = errors.New("websocket: underlying stream has no deadlines")

// Errors for sends that would break the protocol; nothing is written when one is returned.
var (
	ErrPayloadTooLarge = errors.New("websocket: payload over MaxPayloadLen")
	ErrControlPayload  = errors.New("websocket: control payload over 125 bytes")
	ErrFragmentOrder   = errors.New("websocket: data frame out of order (message in progress or none to continue)")
	ErrOpcode          = errors.New("websocket: opcode not sendable")
)

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
// code sent to the peer for a *frame.ProtocolError, and 0 for anything else.
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
var ErrReadMixed = errors.New("websocket: message in progress at another read level")
