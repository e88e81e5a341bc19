package frame_test

import (
	"fmt"

	"github.com/ecows/ecows/frame"
)

func ExampleMask() {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d} // the key of RFC 6455 section 5.7
	payload := []byte("Hello")

	frame.Mask(key, 0, payload)
	fmt.Printf("%x\n", payload)

	// A reader that gets the payload in pieces carries the key position from one to the next.
	pos := frame.Mask(key, 0, payload[:2])
	frame.Mask(key, pos, payload[2:])
	fmt.Println(string(payload))

	// Output:
	// 7f9f4d5158
	// Hello
}
