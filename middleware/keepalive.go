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
// the peer for timeout; timeout 0 means 2*interval, a negative timeout means pings only (a
// silent peer is never cut), and interval 0 or less turns keepalive off. When timeout/2 is
// shorter than interval it pings every timeout/2 instead.
//
// The goroutine reads the count of the peer's frames at each ping, which tells it that
// frames came since the last read but not when. It makes two promises all the same:
//   - a silent peer is cut at most timeout after its last frame (after Open, for a peer that
//     sent none), plus whatever delays the goroutine on a busy machine;
//   - a peer is cut only once a ping has gone unanswered for timeout minus the ping interval,
//     so one that answers every ping within that (an interval, with the default timeout) is
//     never cut, however late the goroutine runs.
//
// For the first, silence is counted from the read before the one that saw the last frame, so
// a silent peer may be cut after as little as timeout minus the ping interval.
//
// A peer that went silent is most likely gone and will not answer a close handshake, so
// Keepalive does not wait for one: it sends a close frame with 1011 and reason "keepalive
// timeout" (the code other libraries such as Python's websockets use) for a peer that is only
// stuck, gives it a quarter of a second to go out, and closes the stream. The read loop then ends and
// ServeConn returns transport.ErrClosed.
//
// Its pings are timed (transport.Conn.SendTimedPing): with metrics on (the Conn's Observer),
// the round trip of each one answered is measured.
//
// It works at both layers: every frame the Conn reads counts in transport.Stats, whoever
// consumes it, so the peer's pongs count whether they reach the handlers (the frame layer
// without AutoPong), are swallowed by AutoPong (which has Keepalive built in) or by the Conn
// (the message layer). The goroutine starts in Open, and Closed waits for it to end.
//
// Frames count when the connection reads them, and it does not read while a handler holds
// the read loop. Time spent in the handlers after Keepalive therefore counts as life, so put
// it before middleware that may hold a unit for long (RateLimit with ExceedWait): a slow handler
// must not make a live peer look dead.
func Keepalive(interval, timeout time.Duration) AnyMiddleware {
	// Defaults are settled here, once: the middleware below runs once per connection, and
	// concurrently for connections that start together.
	if timeout == 0 {
		timeout = 2 * interval
	}
	return func(next UnitHandler) UnitHandler {
		if interval <= 0 {
			return next
		}
		return &keepaliveHandler{next: next, keepalive: &keepalive{interval: interval, timeout: timeout}}
	}
}

// keepaliveHandler is next with a keepalive's hooks.
type keepaliveHandler struct {
	next UnitHandler
	*keepalive
}

func (h *keepaliveHandler) Serve(ctx context.Context, c *transport.Conn, in Unit) error {
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
	// The clock and the count start here rather than when the goroutine first runs, which may
	// be much later on a busy machine: a late start must not lengthen the bound.
	go k.run(c, time.Now(), c.Stats().FramesIn, k.stop, k.done)
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

// expireWrite bounds the write of the close frame that tells a peer why it is cut. A peer
// whose receive window has room takes the frame at once; one whose window is full, or a
// writer blocked on it, must not delay the cut past the documented bound.
const expireWrite = 250 * time.Millisecond

// run pings every period and reads the peer's frame count at each ping. The cut comes quiet
// after the first ping sent since the count last changed (asked): the frames that changed it
// came after the read before, at most a period earlier, so the cut is at most timeout after
// the last of them, and a peer that answers within quiet changes the count before it comes.
func (k *keepalive) run(c *transport.Conn, start time.Time, seen uint64, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	period, quiet := k.interval, time.Duration(-1) // quiet < 0: never cut
	if k.timeout > 0 {
		period = min(k.interval, k.timeout/2)
		quiet = k.timeout - period
	}
	var asked time.Time // zero until a ping goes out after the count changed
	ping := start.Add(period)
	t := time.NewTimer(time.Until(ping))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-c.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		n := c.Stats().FramesIn
		// A handler holding the read loop counts as life: the peer's frames wait unread.
		changed := n != seen || k.busy.Load() > 0
		seen = n
		switch {
		case changed:
			asked = time.Time{}
		case quiet >= 0 && !asked.IsZero() && !now.Before(asked.Add(quiet)):
			k.expire(c)
			return
		}
		// A change seen between pings (at a cut that did not come) is answered by a ping at
		// once: waiting for the next would let the cut come up to a period late.
		if changed || !now.Before(ping) {
			if _, err := c.SendTimedPing(); err != nil { // its round trip goes to the Conn's Observer
				return // closing or broken: the read loop ends it
			}
			if asked.IsZero() {
				asked = time.Now()
			}
			// Pings keep their schedule unless one came off it or late; none follow in a burst.
			if now.Before(ping) {
				ping = now.Add(period)
			} else if ping = ping.Add(period); !ping.After(now) {
				ping = now.Add(period)
			}
		}
		next := ping
		if cut := asked.Add(quiet); quiet >= 0 && !asked.IsZero() && cut.Before(next) {
			next = cut
		}
		t.Reset(time.Until(next))
	}
}

// expire ends a connection whose peer went silent.
func (k *keepalive) expire(c *transport.Conn) {
	bound := time.AfterFunc(expireWrite, func() { c.CloseNow() })
	c.SendClose(frame.CloseInternalError, "keepalive timeout")
	bound.Stop()
	c.CloseNow()
}
