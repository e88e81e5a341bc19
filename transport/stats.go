package transport

import "sync/atomic"

// Stats counts what a Conn has moved so far. Bytes are wire bytes, headers included.
type Stats struct {
	FramesIn, BytesIn   uint64
	FramesOut, BytesOut uint64
}

// counters is the live, atomically updated form of Stats, so that a logger or a keepalive
// goroutine can read it while another goroutine reads or writes.
type counters struct {
	framesIn, bytesIn, framesOut, bytesOut atomic.Uint64
}

// Stats returns the counts so far; it is safe to call at any time from any goroutine.
func (c *Conn) Stats() Stats {
	return Stats{
		FramesIn: c.stats.framesIn.Load(), BytesIn: c.stats.bytesIn.Load(),
		FramesOut: c.stats.framesOut.Load(), BytesOut: c.stats.bytesOut.Load(),
	}
}
