package frame

import "strconv"

// Opcode is the 4-bit frame type of RFC 6455 section 5.2.
type Opcode byte

// The opcodes RFC 6455 defines; the others (0x3-0x7, 0xB-0xF) are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether o is a defined control opcode (close, ping, pong).
func (o Opcode) IsControl() bool { return o == OpClose || o == OpPing || o == OpPong }

// IsData reports whether o is a defined data opcode (continuation, text, binary).
func (o Opcode) IsData() bool { return o <= OpBinary }

// Valid reports whether o is one of the six opcodes RFC 6455 defines.
func (o Opcode) Valid() bool { return o.IsData() || o.IsControl() }

// String returns the opcode's name as the seed's recv_frame names frame types ("text",
// "binary", "continuation", "close", "ping", "pong"), or "reserved(0xN)".
func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "reserved(0x" + strconv.FormatUint(uint64(o), 16) + ")"
}
