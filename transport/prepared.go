package transport

import "github.com/ecows/ecows/frame"

// Prepared is a data message encoded once as a single final frame, so that it can be sent to
// many connections with no encoding and no allocation per connection, as a broadcast does. It
// is immutable and safe for concurrent use by any number of Conns.
type Prepared struct {
	op      frame.Opcode
	wire    []byte // the frame as a server sends it: unmasked, FIN set
	payload []byte // wire's payload
}

// NewPrepared encodes a copy of payload as one final frame with opcode op (frame.OpText or
// frame.OpBinary, else ErrOpcode). Text must be valid UTF-8, else ErrInvalidUTF8.
func NewPrepared(op frame.Opcode, payload []byte) (*Prepared, error) {
	if op != frame.OpText && op != frame.OpBinary {
		return nil, ErrOpcode
	}
	if op == frame.OpText && !frame.ValidUTF8(payload) {
		return nil, ErrInvalidUTF8
	}
	wire := frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: op}, payload)
	return &Prepared{op: op, wire: wire, payload: wire[len(wire)-len(payload):]}, nil
}

// Opcode returns the message's opcode.
func (p *Prepared) Opcode() frame.Opcode { return p.op }

// Payload returns the message's payload; it must not be modified.
func (p *Prepared) Payload() []byte { return p.payload }

// WritePrepared sends each of ps, in order, as one whole message, like SendText or
// SendBinary, and returns the bytes sent, counted as theirs are (see SendFrame). A server
// writes each one's encoded bytes as they are; a client, which must mask with a fresh key,
// encodes each frame anew. The messages go out together, in as few writes as the write buffer
// allows, and no other message comes between them. Everything else is as for any send: it
// waits for a message another goroutine is writing, honours WriteTimeout, and returns
// ErrClosed once a close frame has been sent. If any payload is over MaxPayloadLen it sends
// nothing and returns ErrPayloadTooLarge (WriteMessage would fragment it); if any is over
// MaxMessageLen, ErrMessageTooLarge.
func (c *Conn) WritePrepared(ps ...*Prepared) (int, error) {
	for _, p := range ps {
		if c.cfg.maxPayload >= 0 && int64(len(p.payload)) > c.cfg.maxPayload {
			return 0, ErrPayloadTooLarge
		}
		if c.cfg.maxMessage >= 0 && int64(len(p.payload)) > c.cfg.maxMessage {
			return 0, ErrMessageTooLarge
		}
	}
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.checkOrder(false); err != nil {
		return 0, err
	}
	// Only the last message decides whether the batch goes out now (flush.go).
	c.holding = true
	total := 0
	for i, p := range ps {
		if i == len(ps)-1 {
			c.holding = false
		}
		n, err := c.writePrepared(p)
		total += n
		if err != nil {
			c.holding = false
			return total, err
		}
	}
	return total, nil
}

// writePrepared writes one prepared message; c.wmu is held.
func (c *Conn) writePrepared(p *Prepared) (int, error) {
	if c.role == Client {
		return c.writeFrame(true, p.op, p.payload)
	}
	if err := c.writable(); err != nil {
		return 0, err
	}
	if len(p.wire) > c.cfg.wsize {
		if err := c.flush(); err != nil {
			return 0, err
		}
		n, err := c.writeStream(p.wire)
		return c.wrote(true, p.op, n, err)
	}
	b, err := c.room(len(p.wire))
	if err != nil {
		return c.wrote(true, p.op, 0, err)
	}
	copy(b, p.wire)
	n, err := c.sendQueued(p.op, len(p.wire))
	return c.wrote(true, p.op, n, err)
}
