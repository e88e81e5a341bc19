package middleware

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// Keepalive pings the peer every interval from a goroutine of its own, one per connection,
// and ends the connection when nothing at all (a pong or any other frame) has arrived from
// the peer for timeout; timeout 0 (or less) means 2*interval, and interval 0 (or less) turns
// keepalive off. The check runs at each ping, so a silent peer is caught between timeout and
// timeout+interval after its last frame.
//
// A peer that went silent is most likely gone and will not answer a close handshake, so
// Keepalive does not wait for one: it sends a close frame with 1011 and reason "keepalive
// timeout" (the code other libraries such as Python's websockets use) for a peer that is only
// stuck, and closes the stream at once. The read loop then ends and ServeConn returns
// transport.ErrClosed.
//
// It works at both layers: every frame the Conn reads counts in transport.Stats, whoever
// consumes it, so the peer's pongs count whether they reach the handlers (the frame layer
// without AutoPong), are swallowed by AutoPong (which has Keepalive built in) or by the Conn
// (the message layer). The goroutine starts in Open, and Closed waits for it to end.
//
// Frames count when the connection reads them, and it does not read while a handler holds
// the read loop. Time spent in the handlers after Keepalive therefore counts as life, so put
// it before middleware that may hold a unit for long (RateLimit with Wait): a slow handler
// must not make a live peer look dead.
func Keepalive[T any](interval, timeout time.Duration) Middleware[T] {
	// Defaults are settled here, once: the middleware below runs once per connection, and
	// concurrently for connections that start together.
	if timeout <= 0 {
		timeout = 2 * interval
	}
	return func(next Handler[T]) Handler[T] {
		if interval <= 0 {
			return next
		}
		return &keepaliveHandler[T]{next: next, keepalive: &keepalive{interval: interval, timeout: timeout}}
	}
}

// keepaliveHandler is next with a keepalive's hooks.
type keepaliveHandler[T any] struct {
	next Handler[T]
	*keepalive
}

func (h *keepaliveHandler[T]) Serve(ctx context.Context, c *transport.Conn, in T) error {
	h.busy.Add(1)
	defer h.busy.Add(-1)
	return h.next.Serve(ctx, c, in)
}

// keepalive is the pinging goroutine of one connection.
type keepalive struct {
	interval, timeout time.Duration
	stop, done        chan struct{} // nil when no goroutine runs
	busy              atomic.Int32  // a handler holds the read loop
}

func (k *keepalive) Open(_ context.Context, c *transport.Conn) error {
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go k.run(c, k.stop, k.done)
	return nil
}

func (k *keepalive) Closed(context.Context, *transport.Conn, error) {
	if k.stop == nil {
		return // Open did not run
	}
	close(k.stop)
	<-k.done
	k.stop, k.done = nil, nil
}

func (k *keepalive) run(c *transport.Conn, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(k.interval)
	defer t.Stop()
	seen, last := c.Stats().FramesIn, time.Now()
	for {
		select {
		case <-stop:
			return
		case <-c.Done():
			return
		case now := <-t.C:
			if n := c.Stats().FramesIn; n != seen || k.busy.Load() > 0 {
				seen, last = n, now
			} else if now.Sub(last) >= k.timeout {
				k.expire(c)
				return
			}
			if _, err := c.SendPing(nil); err != nil {
				return // closing or broken: the read loop ends it
			}
		}
	}
}

// expire ends a connection whose peer went silent. The close frame is sent under a bound of
// its own, since a dead peer's full receive window would hold the write for WriteTimeout.
func (k *keepalive) expire(c *transport.Conn) {
	bound := time.AfterFunc(k.timeout, func() { c.CloseNow() })
	c.SendClose(frame.CloseInternalError, "keepalive timeout")
	bound.Stop()
	c.CloseNow()
}
