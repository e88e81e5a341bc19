package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// ReadJSON reads the next data message from c and decodes it as JSON into v, as gorilla's
// ReadJSON and coder's wsjson.Read do; ctx bounds the read as it bounds ReadMessage, whose
// errors it returns. A message that is binary, or whose text does not decode into v, is
// refused with a *JSONError; it has been read whole, and the Conn goes on.
func ReadJSON(ctx context.Context, c *Conn, v any) error {
	bp := jsonBufs.Get()
	defer putJSONBuf(bp)
	op, b, err := c.ReadMessage(ctx, (*bp)[:0])
	*bp = b
	if err != nil {
		return err
	}
	if op != frame.OpText {
		return &JSONError{Opcode: op}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &JSONError{Opcode: op, Err: err}
	}
	return nil
}

// WriteJSON encodes v as JSON and sends it as one text message, as gorilla's WriteJSON and
// coder's wsjson.Write do; ctx bounds the write as it bounds WriteMessage, whose errors it
// returns. A v that cannot be encoded returns encoding/json's error, and nothing is sent.
func WriteJSON(ctx context.Context, c *Conn, v any) error {
	buf := jsonWriteBufs.Get()
	defer putJSONWriteBuf(buf)
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return fmt.Errorf("websocket: WriteJSON: %w", err)
	}
	// Encode ends the value with a newline, which the message does without.
	_, err := c.WriteMessage(ctx, frame.OpText, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}))
	return err
}

// JSONError reports a message that ReadJSON could not decode: a binary one (Err is nil; JSON
// travels as text) or text that is not JSON for the value given (Err is encoding/json's
// error, such as a *json.SyntaxError or a *json.UnmarshalTypeError).
type JSONError struct {
	Opcode frame.Opcode
	Err    error
}

// Error implements error.
func (e *JSONError) Error() string {
	if e.Err == nil {
		return "websocket: JSON expected in a text message, got a " + e.Opcode.String() + " message"
	}
	return "websocket: message is not the JSON expected: " + e.Err.Error()
}

// Unwrap returns the decoder's error.
func (e *JSONError) Unwrap() error { return e.Err }

// The JSON buffers are pooled, so that a steady stream of small messages allocates no buffer
// per message; large ones are not kept.
const maxKeptJSON = 1 << 16

var (
	jsonBufs      pool.Of[[]byte]
	jsonWriteBufs pool.Of[bytes.Buffer]
)

func putJSONBuf(bp *[]byte) {
	if cap(*bp) <= maxKeptJSON {
		jsonBufs.Put(bp)
	}
}

func putJSONWriteBuf(b *bytes.Buffer) {
	if b.Cap() <= maxKeptJSON {
		b.Reset()
		jsonWriteBufs.Put(b)
	}
}
