// Command frame-only parses a captured WebSocket byte stream with the frame codec alone: no
// network, no connection. Run: go run ./examples/frame-only [-hex STREAM]
package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ecows/ecows/frame"
)

// capture is what a browser sent: a masked "Hello" (RFC 6455 section 5.7), a fragmented
// text message with a ping between its fragments, and a close frame with code 1000.
const capture = "818537fa213d7f9f4d5158" + // text "Hello", masked
	"01830102030469676f" + // text "hel", not final
	"898001020304" + // ping, empty
	"8082aabbccddc6d4" + // continuation "lo", final
	"88820102030402ea" // close 1000

func main() {
	stream := flag.String("hex", capture, "the captured stream, in hex")
	flag.Parse()
	raw, err := hex.DecodeString(*stream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "frame-only: -hex:", err)
		os.Exit(2)
	}
	if err := dump(os.Stdout, raw); err != nil {
		fmt.Fprintln(os.Stderr, "frame-only:", err)
		os.Exit(1)
	}
}

// dump prints every frame in raw, one line each.
func dump(w io.Writer, raw []byte) error {
	r := bytes.NewReader(raw)
	for {
		f, err := frame.ReadFrame(r, frame.MaxControlPayload*1024)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case f.Opcode == frame.OpClose:
			fmt.Fprintf(w, "%-12s fin=%v code=%d reason=%q\n", f.Opcode, f.Fin, f.CloseCode(), f.CloseReason())
		case f.Opcode == frame.OpBinary:
			fmt.Fprintf(w, "%-12s fin=%v %x\n", f.Opcode, f.Fin, f.Payload)
		default:
			fmt.Fprintf(w, "%-12s fin=%v %q\n", f.Opcode, f.Fin, f.Payload)
		}
	}
}
