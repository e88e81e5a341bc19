package frame_test

import (
	"bytes"
	"fmt"

	"github.com/ecows/ecows/frame"
)

// A client sends a masked text frame; the server side reads it back. A bytes.Buffer stands in
// for the network.
func Example() {
	var wire bytes.Buffer
	h := frame.Header{Fin: true, Opcode: frame.OpText, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}}
	wire.Write(frame.AppendFrame(nil, h, []byte("Hello")))
	fmt.Printf("% x\n", wire.Bytes())

	f, err := frame.ReadFrame(&wire, 65535)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Opcode, f.Fin, string(f.Payload))
	// Output:
	// 81 85 37 fa 21 3d 7f 9f 4d 51 58
	// text true Hello
}

// DecodeHeader works on bytes already in memory and says how many more it needs.
func ExampleDecodeHeader() {
	wire := frame.AppendHeader(nil, frame.Header{Fin: true, Opcode: frame.OpBinary, Length: 300})
	_, need, err := frame.DecodeHeader(wire[:2])
	fmt.Println(need, err)
	h, n, err := frame.DecodeHeader(wire)
	fmt.Println(n, h.Opcode, h.Length, err)
	// Output:
	// 4 websocket: short frame header
	// 4 binary 300 <nil>
}

func ExampleParseClose() {
	payload, _ := frame.AppendClose(nil, frame.CloseGoingAway, "server restart")
	code, reason, err := frame.ParseClose(payload)
	fmt.Println(int(code), code, reason, err)
	_, _, err = frame.ParseClose([]byte{0x03, 0xee}) // 1006 never appears on the wire
	fmt.Println(err)
	// Output:
	// 1001 going away server restart <nil>
	// websocket: invalid close code (close 1002)
}
