package middleware

import (
	"encoding/json"

	"github.com/ecows/ecows/frame"
)

// ErrUnsupportedData is returned by a decoder for a message of a type it does not take; the
// connection closes with 1003.
var ErrUnsupportedData = &frame.ProtocolError{Code: frame.CloseUnsupportedData, Reason: "unsupported message type"}

// Text decodes a text message as a string; a binary message is ErrUnsupportedData. It is
// the decoder of Messages for string handlers.
func Text(op frame.Opcode, data []byte) (string, error) {
	if op != frame.OpText {
		return "", ErrUnsupportedData
	}
	return string(data), nil
}

// Bytes returns the payload of a message of either type as it is, sharing the read buffer:
// the slice is valid until the handler returns. It is the decoder of Messages for []byte
// handlers.
func Bytes(_ frame.Opcode, data []byte) ([]byte, error) { return data, nil }

// JSON unmarshals a text or binary message into a new M. It is the decoder of Messages for
// handlers of any JSON type: Messages(JSON, h) takes M from h, so it needs no type argument.
// Answer with transport.WriteJSON.
func JSON[M any](_ frame.Opcode, data []byte) (M, error) {
	var m M
	err := json.Unmarshal(data, &m)
	return m, err
}
