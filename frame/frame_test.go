package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestAppendFrameReadFrame(t *testing.T) {
	payload := []byte("Hello")
	h := Header{Fin: true, Opcode: OpText, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}}
	wire := AppendFrame(nil, h, payload)
	// RFC 6455 section 5.7: a single-frame masked text message "Hello".
	want := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	if !bytes.Equal(wire, want) {
		t.Fatalf("wire %x, want %x", wire, want)
	}
	if string(payload) != "Hello" {
		t.Fatal("AppendFrame modified its payload")
	}
	f, err := ReadFrame(bytes.NewReader(wire), 125)
	if err != nil || string(f.Payload) != "Hello" || f.Opcode != OpText || !f.Fin || f.Length != 5 {
		t.Fatalf("ReadFrame = %+v, %v", f, err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	big := AppendFrame(nil, Header{Fin: true, Opcode: OpBinary}, make([]byte, 200))
	if _, err := ReadFrame(bytes.NewReader(big), 199); err != ErrTooBig {
		t.Fatalf("over limit: %v", err)
	}
	if f, err := ReadFrame(bytes.NewReader(big), -1); err != nil || len(f.Payload) != 200 {
		t.Fatalf("no limit: %d bytes, %v", len(f.Payload), err)
	}
	if _, err := ReadFrame(bytes.NewReader(big[:50]), -1); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated payload: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(nil), -1); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
	huge := AppendHeader(nil, Header{Fin: true, Opcode: OpBinary, Length: 1<<63 - 1})
	if _, err := ReadFrame(bytes.NewReader(huge), 1<<20); !errors.Is(err, ErrTooBig) {
		t.Fatalf("2^63-1 declared: %v", err)
	}
}

func TestFrameCloseAccessors(t *testing.T) {
	tests := []struct {
		f      Frame
		code   CloseCode
		reason string
	}{
		{Frame{Header: Header{Opcode: OpClose}}, CloseNoStatus, ""},
		{Frame{Header: Header{Opcode: OpClose}, Payload: []byte{0x03, 0xe9, 'b', 'y', 'e'}}, CloseGoingAway, "bye"},
		{Frame{Header: Header{Opcode: OpText}, Payload: []byte{0x03, 0xe9}}, 0, ""},
	}
	for _, tt := range tests {
		if tt.f.CloseCode() != tt.code || tt.f.CloseReason() != tt.reason {
			t.Errorf("%+v: %d %q", tt.f, tt.f.CloseCode(), tt.f.CloseReason())
		}
	}
}
