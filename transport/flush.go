package transport

import (
	"time"

	"github.com/ecows/ecows/frame"
)

// Write coalescing. When a peer sends many messages at once, its Conn's reader has more input
// buffered after each message it returns; the replies to those messages are gathered in one
// buffer and go out in one write instead of one write each. The batch is sent when the reader
// has caught up and is about to wait for the network, when a frame is written while no more
// input waits, when the buffer is full, when a close frame goes out, or FlushDelay after its
// first frame, whichever comes first: a reply is never held for longer than FlushDelay.

// DefaultFlushDelay is the zero value of Options.FlushDelay.
const DefaultFlushDelay = 100 * time.Microsecond

// room returns n bytes at the end of the pending batch for the caller to fill, sending the
// batch first when it lacks the room; n is at most c.wsize. c.wmu is held.
func (c *Conn) room(n int) ([]byte, error) {
	if c.pendN+n > c.wsize {
		if err := c.flush(); err != nil {
			return nil, err
		}
	}
	if c.pend == nil {
		c.pend = getBuf(c.wsize)
	}
	b := (*c.pend)[c.pendN : c.pendN+n]
	c.pendN += n
	return b, nil
}

// queued ends a frame placed with room: it stays in the batch while the reader has more
// input waiting or WritePrepared has more messages, and the batch is sent otherwise. c.wmu is
// held.
func (c *Conn) queued(op frame.Opcode) error {
	if c.holding {
		return nil // more of the same batch follows at once: no timer needed
	}
	if op != frame.OpClose && c.flushDelay >= 0 && c.moreIn.Load() && c.pendN < c.wsize {
		if !c.armed {
			if c.flushT == nil {
				c.flushT = time.AfterFunc(c.flushDelay, c.timedFlush)
			} else {
				c.flushT.Reset(c.flushDelay)
			}
			c.armed = true
			c.hasPend.Store(true)
		}
		return nil
	}
	return c.flush()
}

// flush sends the pending batch and gives its buffer back. A failed write ends the
// connection, as any failed write does. c.wmu is held.
func (c *Conn) flush() error {
	if c.armed {
		c.flushT.Stop()
		c.armed = false
		c.hasPend.Store(false)
	}
	if c.pend == nil {
		return nil
	}
	var err error
	if c.pendN > 0 {
		_, err = c.rwc.Write((*c.pend)[:c.pendN])
	}
	putBuf(c.pend)
	c.pend, c.pendN = nil, 0
	if err != nil {
		c.writeFailed(err)
	}
	return err
}

// flushWaiting sends a batch that is waiting, for the reader before it waits for the network
// and for CloseNow, and returns the error of that write. It never waits for a writer: once
// moreIn is false, whoever holds c.wmu sends the batch before letting go of it (or its timer
// does).
func (c *Conn) flushWaiting() error {
	if !c.hasPend.Load() {
		return nil
	}
	c.moreIn.Store(false)
	if !c.wmu.TryLock() {
		return nil
	}
	defer c.wmu.Unlock()
	return c.flushLate()
}

// timedFlush runs FlushDelay after a batch started, if it is still waiting.
func (c *Conn) timedFlush() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.armed {
		c.flushLate()
	}
}

// flushLate sends the pending batch outside any write call, under a fresh write deadline,
// unless the write side has failed already; c.wmu is held.
func (c *Conn) flushLate() error {
	if c.werr != nil {
		return nil
	}
	c.refreshWriteDeadline()
	return c.flush()
}
