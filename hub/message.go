package hub

import (
	"github.com/ecows/ecows/transport"
)

// writeMessage writes p to c: the bytes encoded once go out as they are, under c's write
// lock and write deadline. A connection whose frame limit is below the payload gets the
// message through WriteMessage, which fragments it.
func writeMessage(c *transport.Conn, p *transport.Prepared) error {
	_, err := c.WritePrepared(p)
	if err == transport.ErrPayloadTooLarge {
		_, err = c.WriteMessage(p.Opcode(), p.Payload())
	}
	return err
}
