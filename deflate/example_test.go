package deflate_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/ecows/ecows/deflate"
)

// One message compressed as the payload of a WebSocket frame with RSV1 set, and inflated as
// the receiving side does. Reads end with io.EOF at the end of the message.
func Example() {
	msg := []byte(strings.Repeat("permessage-deflate ", 20))
	payload := deflate.AppendCompressed(nil, msg, deflate.DefaultLevel, deflate.MaxWindowBits)
	fmt.Println(len(msg), "bytes compressed to fewer than 40:", len(payload) < 40)

	z := deflate.NewInflater(deflate.MaxWindowBits, false)
	defer z.Close()
	z.Begin()
	z.Feed(payload, true) // the whole message at once
	var out bytes.Buffer
	buf := make([]byte, 64)
	for {
		n, err := z.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(out.String() == string(msg))
	// Output:
	// 380 bytes compressed to fewer than 40: true
	// true
}

// With context takeover, both sides keep the last 2^bits bytes of the messages passed, and a
// message may refer to the ones before it: the second request, which repeats most of the
// first, costs a few bytes. (A message shorter than 128 bytes gains nothing from it at levels
// below 7 or windows below 32 KiB: the engine codes such a message without looking for
// repeats.) The compressed bytes reach the Inflater in two pieces, as two
// frames of a message would; Read asks for the next with ErrNeedInput.
func Example_contextTakeover() {
	const bits = 10 // a 1 KiB window each way
	c := deflate.NewCompressor(deflate.DefaultLevel, bits, true)
	z := deflate.NewInflater(bits, true)
	defer z.Close()
	for _, msg := range []string{
		`{"op":"subscribe","channel":"prices","symbols":["BTC","ETH","SOL","ADA","XRP","DOGE"],"depth":10,"interval":"100ms","snapshot":true}`,
		`{"op":"subscribe","channel":"prices","symbols":["BTC","ETH","SOL","ADA","XRP","DOT"],"depth":10,"interval":"100ms","snapshot":true}`,
	} {
		var wire bytes.Buffer
		c.Start(&wire)
		c.Write([]byte(msg))
		if err := c.Finish(); err != nil {
			fmt.Println(err)
			return
		}
		payload := wire.Bytes()
		fmt.Println(len(msg), "bytes, compressed to fewer than 20:", len(payload) < 20)

		z.Begin()
		half := len(payload) / 2
		z.Feed(payload[:half], false)
		var out []byte
		buf := make([]byte, 16)
		for {
			n, err := z.Read(buf)
			out = append(out, buf[:n]...)
			if err == deflate.ErrNeedInput { // the first piece is used up: the rest of the message
				z.Feed(payload[half:], true)
				continue
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				fmt.Println(err)
				return
			}
		}
		fmt.Println(string(out))
	}
	// Output:
	// 132 bytes, compressed to fewer than 20: false
	// {"op":"subscribe","channel":"prices","symbols":["BTC","ETH","SOL","ADA","XRP","DOGE"],"depth":10,"interval":"100ms","snapshot":true}
	// 131 bytes, compressed to fewer than 20: true
	// {"op":"subscribe","channel":"prices","symbols":["BTC","ETH","SOL","ADA","XRP","DOT"],"depth":10,"interval":"100ms","snapshot":true}
}
