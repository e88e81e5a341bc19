package hub

import (
	"context"
	"github.com/ecows/ecows/transport"
)

// maxBatch bounds the messages a member's writer takes from its queue for one write.
const maxBatch = 64

// writeQueued writes what m's queue holds (up to maxBatch messages) to m's connection in one
// batch, so that a burst of broadcasts costs one write per member rather than one per
// message, and returns how many were written; ok is false when the queue was empty. The
// batch lives in this call's frame, so that a writer waiting for more keeps no message
// alive.
func (h *Hub) writeQueued(m *member) (n int, ok bool) {
	var arr [maxBatch]*transport.Prepared
	batch := arr[:h.take(m, arr[:])]
	if len(batch) == 0 {
		return 0, false
	}
	if len(batch) > 1 {
		if _, err := m.c.WritePrepared(batch...); err == nil {
			return len(batch), true
		} else if err != transport.ErrPayloadTooLarge && err != transport.ErrMessageTooLarge {
			return 0, true
		}
		// Some message needs fragmenting, or is over this member's limit: one at a time,
		// so that the others still go out.
	}
	for _, p := range batch {
		if writeMessage(m.c, p) == nil {
			n++
		}
	}
	return n, true
}

// writeMessage writes p to c: the bytes encoded once go out as they are, under c's write
// lock and write deadline. A connection whose frame limit is below the payload gets the
// message through WriteMessage, which fragments it.
func writeMessage(c *transport.Conn, p *transport.Prepared) error {
	_, err := c.WritePrepared(p)
	if err == transport.ErrPayloadTooLarge {
		_, err = c.WriteMessage(context.Background(), p.Opcode(), p.Payload())
	}
	return err
}
