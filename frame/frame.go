package frame

import (
	"encoding/binary"
	"io"
)

// Frame is one frame: its header and its payload, unmasked.
type Frame struct {
	Header
	Payload []byte
}

// CloseCode returns the status code of a close frame: CloseNoStatus when the payload has none,
// and for other opcodes 0. It does not validate the code; ParseClose does.
func (f Frame) CloseCode() CloseCode {
	if f.Opcode != OpClose {
		return 0
	}
	if len(f.Payload) < 2 {
		return CloseNoStatus
	}
	return CloseCode(binary.BigEndian.Uint16(f.Payload))
}

// CloseReason returns the reason text of a close frame, or "" for other frames.
func (f Frame) CloseReason() string {
	if f.Opcode != OpClose || len(f.Payload) < 2 {
		return ""
	}
	return string(f.Payload[2:])
}

// AppendFrame appends a complete frame to dst: h with its Length set to len(payload), then the
// payload, masked with h.Key when h.Masked. payload itself is not modified.
func AppendFrame(dst []byte, h Header, payload []byte) []byte {
	h.Length = int64(len(payload))
	dst = AppendHeader(dst, h)
	start := len(dst)
	dst = append(dst, payload...)
	if h.Masked {
		Mask(h.Key, 0, dst[start:])
	}
	return dst
}

// ReadFrame reads one frame from r, checks its header as DecodeHeader does, refuses a payload
// longer than maxPayload with ErrTooBig before reading or allocating it (maxPayload < 0 means
// no limit), and returns it unmasked. It is for using the codec on its own; a connection reuses
// its buffers instead.
func ReadFrame(r io.Reader, maxPayload int64) (Frame, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return Frame{}, err
	}
	if maxPayload >= 0 && h.Length > maxPayload {
		return Frame{Header: h}, ErrTooBig
	}
	f := Frame{Header: h, Payload: make([]byte, h.Length)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return Frame{Header: h}, unexpected(err)
	}
	if h.Masked {
		Mask(h.Key, 0, f.Payload)
	}
	return f, nil
}
