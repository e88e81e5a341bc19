package frame_test

import (
	"errors"
	"fmt"

	"github.com/ecows/ecows/frame"
)

func ExampleUTF8() {
	var v frame.UTF8

	// "héllo" arrives in two fragments split inside the two bytes of "é".
	text := []byte("héllo")
	v.Write(text[:2]) // "h\xC3": a valid prefix so far
	v.Write(text[2:]) // "\xA9llo"
	fmt.Println(v.Finish())

	// The next text has a stray byte; Write stops at it, so the connection can fail at once.
	v.Reset()
	n, err := v.Write([]byte("ok\xFFnot checked"))
	fmt.Println(n, errors.Is(err, frame.ErrInvalidUTF8))
	// Output:
	// <nil>
	// 2 true
}
