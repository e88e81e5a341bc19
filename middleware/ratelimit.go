package middleware

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// ExceedPolicy is what RateLimit does with a unit that finds its connection's bucket empty.
type ExceedPolicy uint8

// The policies. ExceedWait, the zero value, is the gentle one: the connection is not read
// while a unit waits, so TCP flow control slows the peer down without losing anything.
const (
	// ExceedWait holds the unit until a token is free. It gives up when ctx is cancelled (the
	// connection then closes with 1001, as for any cancellation) or the connection ends.
	ExceedWait ExceedPolicy = iota
	// ExceedDrop discards the unit without a word to the peer and counts it (see
	// RateLimitOptions.OnDrop).
	ExceedDrop
	// ExceedClose closes the connection with 1008 Policy Violation, reason "rate limit
	// exceeded"; ServeConn returns ErrRateLimited.
	ExceedClose
)

// ErrRateLimited is returned by RateLimit's handler when ExceedClose ends a connection.
var ErrRateLimited = &frame.ProtocolError{Code: frame.ClosePolicyViolation, Reason: "rate limit exceeded"}

// RateLimitOptions configure RateLimit. The zero value limits nothing.
type RateLimitOptions struct {
	// Rate is how many units per second the bucket refills with. Zero (the default) and
	// negative values mean no limit.
	Rate rate.Limit
	// Burst is the bucket's size: how many units may arrive at once after a quiet spell
	// (default 1). A negative Burst means no burst: each unit needs a whole token, as with 1,
	// the smallest bucket there is.
	Burst int
	// OnExceed is what happens to a unit that finds the bucket empty (default ExceedWait).
	OnExceed ExceedPolicy
	// OnDrop, when set, is called for each unit ExceedDrop discards, with the number
	// discarded on the connection so far, in the goroutine reading the connection.
	OnDrop func(ctx context.Context, c *transport.Conn, dropped int)
}

// RateLimit limits the units each connection may send with a token bucket of its own
// (golang.org/x/time/rate): one token per unit, opts.Rate tokens per second, opts.Burst at most.
// It works at both layers, where the unit is a message or a frame.
//
// At the frame layer, control frames are never limited nor dropped: delaying a pong or a close
// would only break the protocol. Under ExceedWait and ExceedClose every data frame takes a
// token. ExceedDrop discards whole messages, so that a handler never sees a message with a hole in it: a message
// whose first frame finds no token is dropped with all its continuation frames (and counted
// once), and the continuation frames of a message let through pass too, taking a token when
// one is left.
func RateLimit(opts RateLimitOptions) AnyMiddleware {
	return func(next UnitHandler) UnitHandler {
		if opts.Rate <= 0 {
			return next
		}
		return &rateLimit{next: next, opts: opts, lim: rate.NewLimiter(opts.Rate, max(opts.Burst, 1))}
	}
}

// rateLimit is RateLimit's handler for one connection.
type rateLimit struct {
	next     UnitHandler
	opts     RateLimitOptions
	lim      *rate.Limiter
	dropped  int
	dropping bool // ExceedDrop at the frame layer: the message in progress is being discarded
}

func (rl *rateLimit) Serve(ctx context.Context, c *transport.Conn, in Unit) error {
	if f, ok := in.Frame(); ok {
		if f.Opcode.IsControl() {
			return rl.next.Serve(ctx, c, in)
		}
		if rl.opts.OnExceed == ExceedDrop {
			return rl.dropMessages(ctx, c, in, f)
		}
	}
	if rl.lim.Allow() {
		return rl.next.Serve(ctx, c, in)
	}
	switch rl.opts.OnExceed {
	case ExceedDrop:
		return rl.drop(ctx, c)
	case ExceedClose:
		return ErrRateLimited
	}
	if err := rl.wait(ctx, c); err != nil {
		return err
	}
	return rl.next.Serve(ctx, c, in)
}

// dropMessages is Serve for a data frame under ExceedDrop, which decides a message's fate at its
// first frame.
func (rl *rateLimit) dropMessages(ctx context.Context, c *transport.Conn, in Unit, f frame.Frame) error {
	if f.Opcode == frame.OpContinuation {
		if rl.dropping {
			rl.dropping = !f.Fin
			return nil
		}
		rl.lim.Allow() // counts against the rate when it can; never cuts a message let in
		return rl.next.Serve(ctx, c, in)
	}
	if !rl.lim.Allow() {
		rl.dropping = !f.Fin
		return rl.drop(ctx, c)
	}
	return rl.next.Serve(ctx, c, in)
}

func (rl *rateLimit) drop(ctx context.Context, c *transport.Conn) error {
	rl.dropped++
	if rl.opts.OnDrop != nil {
		rl.opts.OnDrop(ctx, c, rl.dropped)
	}
	return nil
}

// wait takes the next token, waiting for it unless ctx is cancelled or c ends first.
// (Limiter.Wait would watch only ctx, and the serve loop's ctx need not end with c.)
func (rl *rateLimit) wait(ctx context.Context, c *transport.Conn) error {
	r := rl.lim.Reserve()
	t := time.NewTimer(r.Delay())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-c.Done():
		r.Cancel()
		return transport.ErrClosed
	}
}
