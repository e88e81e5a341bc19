package frame

import "testing"

func TestOpcode(t *testing.T) {
	for op := Opcode(0); op < 16; op++ {
		control := op == OpClose || op == OpPing || op == OpPong
		data := op == OpContinuation || op == OpText || op == OpBinary
		if op.IsControl() != control || op.IsData() != data || op.Valid() != (control || data) {
			t.Errorf("%#x: control %v data %v valid %v", byte(op), op.IsControl(), op.IsData(), op.Valid())
		}
	}
	for op, want := range map[Opcode]string{
		OpContinuation: "continuation", OpText: "text", OpBinary: "binary", OpClose: "close",
		OpPing: "ping", OpPong: "pong", 0x3: "reserved(0x3)", 0xf: "reserved(0xf)",
	} {
		if got := op.String(); got != want {
			t.Errorf("%#x: %q, want %q", byte(op), got, want)
		}
	}
}
