package main

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/reconnect"
	"github.com/ecows/ecows/transport"
)

// dialReconnect is "ecows dial -reconnect": dial, with reconnect.Run dialing again after a
// connection ends or an attempt fails for a reason reconnect.Transient retries. Each
// connection is announced as dial announces its one, and each retry is printed with its
// reason and delay. It ends as dial does when input ends, on /close and when ctx is done, and
// with the error of a failure that is not retried.
func dialReconnect(ctx context.Context, uri string, opts *handshake.DialOptions, in io.Reader, out io.Writer) error {
	w := &lineWriter{w: out}
	lines := make(chan string)
	quit := make(chan struct{})
	defer close(quit)
	go readLines(in, lines, quit)
	var closing error // the close handshake's result, once the user ended the session
	connected := false
	err := reconnect.Run(ctx, uri, func(ctx context.Context, c *transport.Conn) error {
		ended, err := converse(ctx, c, uri, w, lines)
		if ended {
			closing = err
			return nil
		}
		return err
	}, &reconnect.Options{
		Dial: opts,
		OnDisconnect: func(e reconnect.Event) {
			connected = e.Connected
			switch {
			case !e.Retry:
			case e.Connected:
				w.printf("* disconnected after %v: %v; reconnecting in %v", e.Uptime.Round(time.Millisecond), e.Err, e.Delay.Round(time.Millisecond))
			default:
				w.printf("* attempt %d failed: %v; retrying in %v", e.Attempt, e.Err, e.Delay.Round(time.Millisecond))
			}
		},
	})
	switch {
	case err == nil:
		return closing
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return nil // interrupted between attempts: nothing to close
	case !connected:
		return handshakeError(err)
	}
	return serverEnd(err)
}
