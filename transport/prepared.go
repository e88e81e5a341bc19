package transport

import (
	"sync"

	"github.com/ecows/ecows/deflate"
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// Prepared is a data message encoded once as a single final frame, so that it can be sent to
// many connections with no encoding and no allocation per connection, as a broadcast does. It
// is immutable and safe for concurrent use by any number of Conns.
//
// With permessage-deflate, a Prepared is also compressed once, the first time a Conn that
// compresses needs it, for every Conn whose agreement allows the same level and window: the
// compressed form refers to no earlier message, which any agreement allows (a Conn that keeps
// its context adds the message to its window, as its peer does). CompressionOptions'
// PreparedOwnContext makes such Conns compress it with their own context instead.
type Prepared struct {
	op      frame.Opcode
	wire    []byte // the frame as a server sends it: unmasked, FIN set
	payload []byte // wire's payload

	zmu sync.Mutex
	zs  []*zform // the compressed forms made so far
}

// zform is a Prepared's payload compressed at one level and window.
type zform struct {
	level, bits int
	wire        []byte // the frame as a server sends it, RSV1 set; nil when compressing did not shrink it
	payload     []byte // wire's payload
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

// compressed returns p compressed at level within a window of 2^bits bytes, made on first use.
func (p *Prepared) compressed(level, bits int) *zform {
	p.zmu.Lock()
	defer p.zmu.Unlock()
	for _, f := range p.zs {
		if f.level == level && f.bits == bits {
			return f
		}
	}
	f := &zform{level: level, bits: bits}
	if z := deflate.AppendCompressed(nil, p.payload, level, bits); len(z) < len(p.payload) {
		f.wire = frame.AppendFrame(nil, frame.Header{Fin: true, Rsv1: true, Opcode: p.op}, z)
		f.payload = f.wire[len(f.wire)-len(z):]
	}
	p.zs = append(p.zs, f)
	return f
}

// WritePrepared sends each of ps, in order, as one whole message, like SendText or
// SendBinary, and returns the bytes sent, counted as theirs are (see SendFrame). A server
// writes each one's encoded bytes as they are; a client, which must mask with a fresh key,
// encodes each frame anew. The messages go out together, in as few writes as the write buffer
// allows, and no other message comes between them. With compression on, each goes out
// compressed as for any message (see Prepared). Everything else is as for any send: it
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

// writePrepared writes one prepared message in the form this Conn sends it; c.msgMu and c.wmu
// are held.
func (c *Conn) writePrepared(p *Prepared) (int, error) {
	if !c.compressing(len(p.payload)) {
		return c.writePreparedFrame(p.op, p.wire, p.payload, false)
	}
	z := c.ext.zw
	if z.takeover && z.ownCtx {
		return c.writePreparedOwn(p)
	}
	f := p.compressed(z.z.Level(), z.z.WindowBits())
	if f.wire == nil {
		return c.writePreparedFrame(p.op, p.wire, p.payload, false)
	}
	z.z.Record(p.payload)
	c.sendingCompressed(int64(len(p.payload)))
	return c.writePreparedFrame(p.op, f.wire, f.payload, true)
}

// writePreparedOwn compresses p with this Conn's context (PreparedOwnContext).
func (c *Conn) writePreparedOwn(p *Prepared) (int, error) {
	z := c.ext.zw.z
	bp := pool.Get(len(p.payload) + 64)
	defer pool.Put(bp)
	payload := z.Append((*bp)[:0], p.payload)
	if c.cfg.maxPayload >= 0 && int64(len(payload)) > c.cfg.maxPayload {
		z.Abort() // the peer will not see this message's context: start the next afresh
		return c.writePreparedFrame(p.op, p.wire, p.payload, false)
	}
	c.sendingCompressed(int64(len(p.payload)))
	return c.writePreparedFrame(p.op, nil, payload, true)
}

// writePreparedFrame writes a final frame of a prepared message: wire, a server's encoding of
// it, or payload, encoded anew when wire is nil or this side is a client; c.wmu is held.
func (c *Conn) writePreparedFrame(op frame.Opcode, wire, payload []byte, rsv1 bool) (int, error) {
	if err := c.writable(); err != nil {
		return 0, err
	}
	if c.role == Client || wire == nil {
		n, err := c.writeWire(c.header(true, rsv1, op, len(payload)), payload)
		return c.wrote(true, op, len(payload), n, err)
	}
	if len(wire) > c.cfg.wsize {
		if err := c.flush(); err != nil {
			return 0, err
		}
		n, err := c.writeStream(wire)
		return c.wrote(true, op, len(payload), n, err)
	}
	b, err := c.room(len(wire))
	if err != nil {
		return c.wrote(true, op, 0, 0, err)
	}
	copy(b, wire)
	n, err := c.sendQueued(op, len(wire))
	return c.wrote(true, op, len(payload), n, err)
}
