package transport

import (
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// Write coalescing. When a peer sends many messages at once, its Conn's reader has more input
// buffered after each message it returns; the replies to those messages are gathered in one
// buffer and go out in one write instead of one write each. The batch is sent when the reader
// has caught up and is about to wait for the network, when a frame is written while no more
// input waits, when the buffer is full, when a close frame goes out, when the reader comes back
// for more input FlushDelay or more after the batch began, or when a timer FlushDelay after the
// batch began fires, whichever comes first.
//
// Gathering pays only while the handler comes straight back for the next message. The timer
// cannot bound a handler that does other work after its reply: Go's runtime timers fire about
// a millisecond late when the process has nothing else to do. So a Conn whose handler was
// seen to take FlushDelay or longer (the timer fired, or the reader came back late) stops
// gathering and writes each frame at once, until a read call shows a quick turn again.

// DefaultFlushDelay is the zero value of Options.FlushDelay.
const DefaultFlushDelay = 100 * time.Microsecond

// batch is a buffer of encoded frames that go out together, borrowed from a pool for as long
// as frames wait in it (it keeps its buffer and timer while pooled), so that a Conn holds one
// only while it is writing.
type batch struct {
	bufp  *[]byte
	n     int
	start time.Duration        // when the first frame was held, as a monotonic() time
	armed bool                 // t runs for this batch
	t     *time.Timer          // calls fire; made on first use
	owner atomic.Pointer[Conn] // set while t runs, for fire
}

var batches pool.Of[batch]

// minBatch is the smallest buffer a batch gathers frames in, whatever WriteBufferSize: the
// replies to a peer's burst go out in one write only as far as they fit, and 64 connections
// pipelining 1 KiB messages echo about 20% more per second with 16 KiB than with 4 KiB
// (bench/run.sh, the 64x1KiB rows). It is borrowed only while frames wait.
const minBatch = 16 << 10

// startBatch borrows a batch for c; c.wmu is held and c has none.
func (c *Conn) startBatch() *batch {
	b := batches.Get()
	if size := max(c.cfg.wsize, minBatch); b.bufp == nil || len(*b.bufp) < size {
		if b.bufp != nil {
			pool.Put(b.bufp)
		}
		b.bufp = pool.Get(size)
	}
	c.pend = b
	return b
}

// room returns n bytes at the end of the pending batch for the caller to fill, sending the
// batch first when it lacks the room; n is at most c.cfg.wsize. c.wmu is held.
func (c *Conn) room(n int) ([]byte, error) {
	b := c.pend
	if b != nil && b.n+n > len(*b.bufp) {
		if err := c.flush(); err != nil {
			return nil, err
		}
		b = nil
	}
	if b == nil {
		b = c.startBatch()
	}
	p := (*b.bufp)[b.n : b.n+n]
	b.n += n
	return p, nil
}

// queued ends a frame placed with room: it stays in the batch while the reader has more
// input waiting or WritePrepared has more messages, and the batch is sent otherwise. c.wmu is
// held.
func (c *Conn) queued(op frame.Opcode) error {
	if c.holding {
		return nil // more of the same batch follows at once: no timer needed
	}
	b := c.pend
	if op != frame.OpClose && c.cfg.flushDelay >= 0 && c.state.Load()&(moreIn|slowTurns) == moreIn && b.n < len(*b.bufp) {
		if !b.armed {
			b.start = monotonic()
			b.owner.Store(c)
			if b.t == nil {
				b.t = time.AfterFunc(c.cfg.flushDelay, b.fire)
			} else {
				b.t.Reset(c.cfg.flushDelay)
			}
			b.armed = true
			c.set(hasPend)
		}
		return nil
	}
	return c.flush()
}

// flush sends the pending batch and gives it back. A failed write ends the connection, as any
// failed write does. c.wmu is held.
func (c *Conn) flush() error {
	b := c.pend
	if b == nil {
		return nil
	}
	if b.armed {
		b.t.Stop()
		b.armed = false
		b.owner.Store(nil)
		c.setTo(hasPend, false)
	}
	var err error
	if b.n > 0 {
		_, err = c.writeStream((*b.bufp)[:b.n])
	}
	c.pend, b.n = nil, 0
	batches.Put(b)
	if err != nil {
		c.writeFailed(err)
	}
	c.flushSent()
	return err
}

// flushWaiting sends a batch that is waiting, for the reader before it waits for the network
// and for CloseNow, and returns the error of that write. It never waits for a writer: once
// moreIn is false, whoever holds c.wmu sends the batch before letting go of it (or its timer
// does).
func (c *Conn) flushWaiting() error {
	if !c.is(hasPend) {
		return nil
	}
	c.setTo(moreIn, false)
	if !c.wmu.TryLock() {
		return nil
	}
	defer c.wmu.Unlock()
	return c.flushLate()
}

// fire runs FlushDelay after the batch started. By then the batch may have gone out, and
// even be another Conn's: it is sent only if it is still its owner's pending batch.
func (b *batch) fire() {
	c := b.owner.Load()
	if c == nil {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pend == b && b.armed {
		c.set(slowTurns)
		c.flushLate()
	}
}

// turnBegins is called as a read call starts. It sends a batch that has waited FlushDelay or
// longer, and tells from how long the caller took since the last call returned whether its
// turns are slow (see the comment at the top); c.rmu is held.
func (c *Conn) turnBegins() {
	r := c.rd
	if r.turnAt != 0 {
		c.setTo(slowTurns, monotonic()-r.turnAt >= c.cfg.flushDelay)
		r.turnAt = 0
	}
	if !c.is(hasPend) {
		return
	}
	// Every fourth call looks at the clock: on every call it costs the pipelined path, and
	// a reply held a few quick turns longer is still held far less than the timer would.
	if r.seen++; r.seen&3 != 0 || !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	if b := c.pend; b != nil && b.armed && monotonic()-b.start >= c.cfg.flushDelay {
		c.set(slowTurns)
		c.flushLate()
	}
}

// turnEnds is called as a read call returns with more input buffered. Only a Conn whose turns
// are slow times them, to find out when they are quick again; c.rmu is held.
func (c *Conn) turnEnds() {
	if c.is(slowTurns) {
		c.rd.turnAt = monotonic()
	}
}

// flushLate sends the pending batch outside any write call, under a fresh write deadline,
// unless the write side has failed already; c.wmu is held.
func (c *Conn) flushLate() error {
	if c.writeErr() != nil {
		return nil
	}
	c.refreshWriteDeadline()
	return c.flush()
}
