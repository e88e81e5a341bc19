package dialtest

import (
	"context"
	"testing"
	"time"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// wait bounds the handshake, generously for a busy machine.
const wait = 10 * time.Second

// Dial runs the handshake with url, opts as in handshake.Dial, and returns the client Conn,
// closed when t ends. It fails t if the handshake fails or does not finish within 10 s.
func Dial(t testing.TB, url string, opts *handshake.DialOptions) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := handshake.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}
