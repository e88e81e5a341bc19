package transport

import (
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
)

// Observer receives a Conn's measurements as they happen. Package metrics implements it, and
// handshake.ServerOptions.Metrics gives each accepted connection one through Setup.Observer.
// Its methods run on the goroutines that read, write, ping and close the Conn, some with the
// Conn's locks held, so they must be quick and must not call the Conn.
//
// Received and FlushReceived are only called with the Conn's read lock held, so never at the
// same time, and Sent and FlushSent with its write lock held: an Observer may gather what
// they report per side without atomics or locks of its own, and make it visible when flushed.
// The Conn flushes a side whenever it pauses there: its reader at the end of a read call
// that leaves no input buffered (before it would wait for the peer) and once it has ended,
// its writer once its frames have gone to the stream; and both after the stream closes, as
// soon as no read or write is under way.
type Observer interface {
	// Received is called for each data message read to its end, at every read level: size
	// is its payload as the application sees it (inflated), wire the payload bytes it took
	// on the wire (compressed; frame headers excluded). They are equal for a message that
	// was not compressed.
	Received(size, wire int64)
	// Sent is called for each data message sent to its end, with the same sizes; a message
	// counts as sent once it is written or queued to go out with the frames after it
	// (Options.FlushDelay).
	Sent(size, wire int64)
	// FlushReceived and FlushSent say that what Received and Sent reported so far should be
	// visible now.
	FlushReceived()
	FlushSent()
	// Pinged is called with the round-trip time of each Ping that got its pong.
	Pinged(rtt time.Duration)
	// Closed is called once, when the stream closes, with the code of the first close frame
	// and the side that sent it; CloseAbnormal and SideNone when the connection ended
	// without one (the peer vanished, a write failed, or CloseNow).
	Closed(code frame.CloseCode, by Side)
}

// Side says which end of a connection did something.
type Side uint8

// The sides, as Observer.Closed reports them.
const (
	SideNone  Side = iota // neither: the connection ended without a close frame
	SideLocal             // this end
	SidePeer              // the other end
)

// String returns "none", "local" or "peer".
func (s Side) String() string {
	switch s {
	case SideLocal:
		return "local"
	case SidePeer:
		return "peer"
	}
	return "none"
}

// observed is what a Conn keeps for its Observer, in its extras.
type observed struct {
	o Observer
	// The message being sent, guarded by Conn.wmu: its payload bytes on the wire so far
	// and, once it is compressed, its size before compression.
	outWire, outSize int64
	outZ             bool
	// The first close frame, sent or received: code | side<<16, 0 until there is one.
	close atomic.Uint32
}

// observer returns c's Observer state, nil when it has none.
func (c *Conn) observer() *observed {
	if c.ext == nil {
		return nil
	}
	return c.ext.obs
}

// sentFrame accounts for a data frame with n payload bytes just written; c.wmu is held.
func (c *Conn) sentFrame(fin bool, n int) {
	ob := c.observer()
	if ob == nil {
		return
	}
	ob.outWire += int64(n)
	if !fin {
		return
	}
	size := ob.outWire
	if ob.outZ {
		size = ob.outSize
	}
	ob.o.Sent(size, ob.outWire)
	ob.outWire, ob.outSize, ob.outZ = 0, 0, false
	if !c.is(hasPend) {
		ob.o.FlushSent() // nothing waits to go out with later frames
	}
}

// flushSent flushes the Observer's send side; c.wmu is held.
func (c *Conn) flushSent() {
	if ob := c.observer(); ob != nil {
		ob.o.FlushSent()
	}
}

// flushObserved flushes both sides of the Observer after the stream closed, each unless a
// read or a write holds it: that one flushes as it ends (unlockRead, writeFailed, flush).
func (c *Conn) flushObserved() {
	ob := c.observer()
	if ob == nil {
		return
	}
	if c.rmu.TryLock() {
		ob.o.FlushReceived()
		c.rmu.Unlock()
	}
	if c.wmu.TryLock() {
		ob.o.FlushSent()
		c.wmu.Unlock()
	}
}

// sendingCompressed records the size before compression of the message being sent, before its
// last frame is written; c.wmu is held.
func (c *Conn) sendingCompressed(size int64) {
	if ob := c.observer(); ob != nil {
		ob.outSize, ob.outZ = size, true
	}
}

// receivedMessage accounts for a data message read to its end.
func (c *Conn) receivedMessage(size, wire int64) {
	if ob := c.observer(); ob != nil {
		ob.o.Received(size, wire)
	}
}

// pinged reports a Ping's round trip and returns it.
func (c *Conn) pinged(rtt time.Duration) time.Duration {
	if ob := c.observer(); ob != nil {
		ob.o.Pinged(rtt)
	}
	return rtt
}

// noteClose records a close frame sent or received; only the first counts.
func (c *Conn) noteClose(code frame.CloseCode, by Side) {
	if ob := c.observer(); ob != nil {
		ob.close.CompareAndSwap(0, uint32(code)|uint32(by)<<16)
	}
}

// observeClosed reports the end of the stream; closeStream calls it once.
func (c *Conn) observeClosed() {
	ob := c.observer()
	if ob == nil {
		return
	}
	code, by := frame.CloseAbnormal, SideNone
	if v := ob.close.Load(); v != 0 {
		code, by = frame.CloseCode(v&0xffff), Side(v>>16)
	}
	ob.o.Closed(code, by)
}
