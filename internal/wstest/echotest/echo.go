// Package echotest holds the echo loop that the test servers of ecows' packages above
// transport run on their Conns.
//
// It is apart from wstest because it imports transport, which transport's in-package tests
// could not import then; unlike dialtest it does not import handshake, so that handshake's
// in-package tests can use it.
package echotest

import (
	"context"

	"github.com/ecows/ecows/transport"
)

// Echo sends every message read from c back with its opcode until a read or a write fails,
// then closes c and returns that error. ctx bounds the reads only, so that an echo is never
// cut short. The Conn's own checks decide what a peer may send: a violation ends the read
// after the Conn has sent its close code.
func Echo(ctx context.Context, c *transport.Conn) error {
	defer c.CloseNow()
	var buf []byte
	for {
		op, msg, err := c.ReadMessage(ctx, buf[:0])
		if err != nil {
			return err
		}
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			return err
		}
		buf = msg
	}
}
