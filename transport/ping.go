package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrPongTimeout is returned by Keepalive when a pong did not come within its timeout: the
// peer, or the path to it, is presumed dead, and the connection has been closed.
var ErrPongTimeout = errors.New("websocket: no pong within the keepalive timeout")

// DefaultKeepaliveInterval is the time between Keepalive's pings when its interval is zero.
const DefaultKeepaliveInterval = 30 * time.Second

// pingSeq numbers pings process-wide, from a random start, so that a ping's payload is unique
// among the pings in flight on a Conn and unlikely to match a pong the peer sends on its own.
var pingSeq atomic.Uint64

func init() { pingSeq.Store(rand.Uint64()) }

// pinger holds the pings of a Conn that wait for their pongs, by payload: Ping's, with the
// channel their waiter reads, and SendTimedPing's, with the time they were sent.
type pinger struct {
	mu    sync.Mutex
	wait  map[uint64]chan time.Time
	timed map[uint64]time.Time
}

// maxTimed bounds the timed pings a Conn remembers: a peer that never answers cannot make it
// keep more.
const maxTimed = 8

// pings returns c's pinger, made on first use.
func (c *Conn) pings() *pinger {
	x := c.rare()
	if p := x.pings.Load(); p != nil {
		return p
	}
	x.pings.CompareAndSwap(nil, &pinger{wait: make(map[uint64]chan time.Time), timed: make(map[uint64]time.Time)})
	return x.pings.Load()
}

// pongArrived wakes the Ping waiting for payload, if any. The reader calls it for every pong,
// at every read level, before the PongHandler sees it.
func (c *Conn) pongArrived(payload []byte) {
	if len(payload) != 8 {
		return
	}
	x := c.aux.Load()
	if x == nil {
		return
	}
	p := x.pings.Load()
	if p == nil {
		return
	}
	id := binary.BigEndian.Uint64(payload)
	now := time.Now()
	p.mu.Lock()
	w, ok := p.wait[id]
	delete(p.wait, id)
	sent, timed := p.timed[id]
	delete(p.timed, id)
	p.mu.Unlock()
	switch {
	case ok:
		w <- now // buffered, and only the one pong with this payload gets here
	case timed:
		c.pinged(now.Sub(sent))
	}
}

// SendTimedPing sends a ping with a payload of its own, as Ping does, but does not wait for
// its pong: when the pong comes (noticed by whichever read call is running, as for Ping),
// its round trip goes to the Conn's Observer (Setup.Observer) as Ping's does. A Conn
// remembers its last 8 such pings; a pong to an older one is not timed. This is how
// middleware.Keepalive pings, so that a server measures its clients' round trips without a
// goroutine waiting for each pong. It returns what SendPing returns.
func (c *Conn) SendTimedPing() (int, error) {
	id := pingSeq.Add(1)
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], id)
	if c.observer() != nil {
		p := c.pings()
		p.mu.Lock()
		if len(p.timed) >= maxTimed {
			oldest, at := uint64(0), time.Time{}
			for k, t := range p.timed {
				if at.IsZero() || t.Before(at) {
					oldest, at = k, t
				}
			}
			delete(p.timed, oldest)
		}
		p.timed[id] = time.Now()
		p.mu.Unlock()
	}
	return c.SendPing(payload[:])
}

// Ping sends a ping with a payload of its own and waits for the pong that echoes it, and
// returns the round-trip time. Several Pings may wait at once, each for its own pong.
//
// The pong is noticed by whichever read call is running on c (RecvFrame, ReadMessage,
// NextReader, or the middleware's serve loops that use them), so another goroutine must be
// reading: Ping does not read. When nobody reads, or the peer never answers, ctx ends the
// wait and Ping returns ctx's error. It returns ErrClosed once the stream has closed, and the
// send's error when the ping cannot be sent.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p := c.pings()
	id := pingSeq.Add(1)
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], id)
	w := make(chan time.Time, 1)
	p.mu.Lock()
	p.wait[id] = w
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.wait, id)
		p.mu.Unlock()
	}()
	start := time.Now()
	if _, err := c.SendPing(payload[:]); err != nil {
		return 0, err
	}
	select {
	case at := <-w:
		return c.pinged(at.Sub(start)), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.Done():
		select {
		case at := <-w: // the pong came just before the end
			return c.pinged(at.Sub(start)), nil
		default:
			return 0, ErrClosed
		}
	}
}

// Keepalive detects a dead peer: it sends a ping every interval (DefaultKeepaliveInterval when
// zero) and waits up to timeout (interval when zero or negative) for its pong. When a pong does not come
// in time, it closes c at once with CloseNow, since a peer that does not answer pings will not
// answer a close frame either, and returns ErrPongTimeout; blocked reads and writes on c then
// fail, which ends the application's session. It returns ctx's error when ctx ends, ErrClosed
// once c has closed, and nil at once when interval is negative (no keepalive).
//
// Run it in a goroutine of its own, beside the reader: as with Ping, pongs are noticed only
// while another goroutine reads from c. A client that wants its server to notice its own
// death as well gets that from the server's keepalive, such as the middleware's AutoPong.
func (c *Conn) Keepalive(ctx context.Context, interval, timeout time.Duration) error {
	if interval < 0 {
		return nil
	}
	if interval == 0 {
		interval = DefaultKeepaliveInterval
	}
	if timeout <= 0 {
		timeout = interval
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			return ErrClosed
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := c.Ping(pctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			c.CloseNow()
			return ErrPongTimeout
		default:
			return err
		}
		t.Reset(interval)
	}
}
