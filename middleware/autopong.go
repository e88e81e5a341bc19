package middleware

import (
	"context"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// AutoPongOptions configure AutoPong. The zero value (or nil) answers pings and sends none.
type AutoPongOptions struct {
	// Interval, when positive, turns on Keepalive: a ping every Interval, and the connection
	// ends at most Timeout after the last frame from the peer. Zero (the default) and
	// negative values turn it off.
	Interval time.Duration
	// Timeout is Keepalive's dead-peer timeout (default 2*Interval); a peer that answers each
	// ping within Timeout-Interval is never cut. A negative Timeout means pings only: a
	// silent peer is never cut.
	Timeout time.Duration
}

// AutoPong handles control frames at the frame layer, as the Conn does at the message layer:
// it answers each ping with a pong carrying the same payload (RFC 6455 section 5.5.3) and
// swallows pongs, so the handlers after it never see either. Data and close frames pass on.
// With opts.Interval set it also keeps the connection alive, as Keepalive does.
func AutoPong(opts *AutoPongOptions) Middleware[frame.Frame] {
	var o AutoPongOptions
	if opts != nil {
		o = *opts
	}
	keepalive := Keepalive(o.Interval, o.Timeout)
	return func(next Handler[frame.Frame]) Handler[frame.Frame] {
		return wrap[frame.Frame](keepalive, autoPong{next: next})
	}
}

// autoPong is AutoPong's handler without keepalive.
type autoPong struct {
	next Handler[frame.Frame]
}

func (a autoPong) Serve(ctx context.Context, c *transport.Conn, f frame.Frame) error {
	switch f.Opcode {
	case frame.OpPing:
		// After our close frame the peer needs no pong: ErrClosed is not a failure.
		if _, err := c.SendPong(f.Payload); err != nil && err != transport.ErrClosed {
			return err
		}
		return nil
	case frame.OpPong:
		return nil
	}
	return a.next.Serve(ctx, c, f)
}
