package middleware

import (
	"context"
	"encoding/json"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// Codec turns messages into values of M and back.
type Codec[M any] interface {
	Decode(op frame.Opcode, data []byte) (M, error)
	Encode(m M) (frame.Opcode, []byte, error)
}

// ErrUnsupportedData is returned by a codec for a message of a type it does not take; the
// connection closes with 1003.
var ErrUnsupportedData = &frame.ProtocolError{Code: frame.CloseUnsupportedData, Reason: "unsupported message type"}

// Text is the codec of text messages as strings; binary messages are refused with 1003.
type Text struct{}

// Decode returns the text of a text message.
func (Text) Decode(op frame.Opcode, data []byte) (string, error) {
	if op != frame.OpText {
		return "", ErrUnsupportedData
	}
	return string(data), nil
}

// Encode returns s as a text message.
func (Text) Encode(s string) (frame.Opcode, []byte, error) { return frame.OpText, []byte(s), nil }

// Bytes is the codec of raw payloads of either type. Decoded slices share the read buffer and
// are valid until the handler returns.
type Bytes struct{}

// Decode returns data as it is.
func (Bytes) Decode(_ frame.Opcode, data []byte) ([]byte, error) { return data, nil }

// Encode returns b as a binary message.
func (Bytes) Encode(b []byte) (frame.Opcode, []byte, error) { return frame.OpBinary, b, nil }

// JSON is the codec of JSON values of type M, carried in text or binary messages and sent as
// text.
type JSON[M any] struct{}

// Decode unmarshals data into a new M.
func (JSON[M]) Decode(_ frame.Opcode, data []byte) (M, error) {
	var m M
	err := json.Unmarshal(data, &m)
	return m, err
}

// Encode marshals m.
func (JSON[M]) Encode(m M) (frame.Opcode, []byte, error) {
	b, err := json.Marshal(m)
	return frame.OpText, b, err
}

// Send encodes m with codec and writes it to c as one message.
func Send[M any](c *transport.Conn, codec Codec[M], m M) error {
	op, b, err := codec.Encode(m)
	if err != nil {
		return err
	}
	_, err = c.WriteMessage(context.Background(), op, b)
	return err
}
