package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// SendFrame sends one frame, the seed's send_frame, and returns the bytes of it, header and
// payload, handed to the stream: all of them when it returns nil, though a frame that fits the
// write buffer may wait there for up to Options.FlushDelay, to go out with the frames after
// it; when the write fails, only those the stream took before it failed, 0 if none; 0 when
// the send is refused before anything is written (a *UsageError, ErrClosed). Every send
// counts so.
//
// SendFrame checks the frame against the protocol first and sends nothing when it would break
// it, with the matching *UsageError: a control frame that is fragmented
// (ErrControlFragmented) or over 125 bytes (ErrControlPayload), a close payload that could not
// be parsed (ErrClosePayload, ErrCloseCode, ErrCloseReason), a data payload over
// MaxPayloadLen (ErrPayloadTooLarge), an undefined opcode (ErrOpcode), or a data frame out of
// order (ErrFragmentOrder: OpContinuation without a fragmented message in progress, or text or
// binary inside one). It checks frames one at a time: neither MaxMessageLen nor UTF-8 across a
// message is checked when fragmenting by hand. Fragmenting by hand is for one goroutine at a
// time; WriteMessage and NextWriter fragment safely under concurrency. SendFrame never
// compresses: with permessage-deflate its messages go out uncompressed, as RFC 7692 allows
// any message to.
//
// The Send methods keep the seed's signatures, without a context: Options.WriteTimeout bounds
// them (a stall, see there), and CloseNow interrupts them. WriteMessage and NextWriter take a
// context.
func (c *Conn) SendFrame(fin bool, op frame.Opcode, payload []byte) (int, error) {
	switch {
	case op.IsControl():
		if !fin {
			return 0, ErrControlFragmented
		}
		if len(payload) > frame.MaxControlPayload {
			return 0, ErrControlPayload
		}
		if op == frame.OpClose {
			if _, _, err := frame.ParseClose(payload); err != nil {
				return 0, closeUsage(err)
			}
		}
	case op.IsData():
		if c.cfg.maxPayload >= 0 && int64(len(payload)) > c.cfg.maxPayload {
			return 0, ErrPayloadTooLarge
		}
	default:
		return 0, ErrOpcode
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if op.IsData() {
		if err := c.checkOrder(op == frame.OpContinuation); err != nil {
			return 0, err
		}
	}
	return c.writeFrame(fin, op, payload)
}

// SendText sends p as one text frame, the seed's send_text, and returns the bytes sent,
// counted as SendFrame counts them. p must be valid UTF-8 (else ErrInvalidUTF8), fit MaxPayloadLen (else
// ErrPayloadTooLarge; WriteMessage fragments larger messages) and MaxMessageLen (else
// ErrMessageTooLarge); nothing is sent otherwise. With permessage-deflate, p is compressed as
// WriteMessage would; in the rare case where that makes it longer than MaxPayloadLen, the
// message goes out in two frames.
func (c *Conn) SendText(p []byte) (int, error) { return c.sendMessageFrame(frame.OpText, p) }

// SendBinary sends p as one binary frame, the seed's send_binary, as SendText does.
func (c *Conn) SendBinary(p []byte) (int, error) { return c.sendMessageFrame(frame.OpBinary, p) }

// SendPing sends a ping with payload p (at most 125 bytes), the seed's send_ping, and returns
// the bytes sent, counted as SendFrame counts them.
func (c *Conn) SendPing(p []byte) (int, error) { return c.SendFrame(true, frame.OpPing, p) }

// SendPong sends a pong with payload p (at most 125 bytes), the seed's send_pong, and returns
// the bytes sent. A pong that answers a ping must carry the ping's payload (RFC 6455 section
// 5.5.3).
func (c *Conn) SendPong(p []byte) (int, error) { return c.SendFrame(true, frame.OpPong, p) }

// sendMessageFrame sends a whole message in a single frame, waiting for any message another
// goroutine is writing to finish.
func (c *Conn) sendMessageFrame(op frame.Opcode, p []byte) (int, error) {
	if c.cfg.maxPayload >= 0 && int64(len(p)) > c.cfg.maxPayload {
		return 0, ErrPayloadTooLarge
	}
	if err := c.checkMessage(op, p); err != nil {
		return 0, err
	}
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	if c.compressing(len(p)) {
		return c.writeCompressed(op, p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.checkOrder(false); err != nil {
		return 0, err
	}
	return c.writeFrame(true, op, p)
}

// checkMessage reports why p may not be sent as a whole message with opcode op, before any of
// it is: the limits a receiving Conn with the same options would apply, in both directions.
func (c *Conn) checkMessage(op frame.Opcode, p []byte) error {
	if c.cfg.maxMessage >= 0 && int64(len(p)) > c.cfg.maxMessage {
		return ErrMessageTooLarge
	}
	if op == frame.OpText && !frame.ValidUTF8(p) {
		return ErrInvalidUTF8
	}
	return nil
}

// checkOrder reports why a data frame that continues a message (or starts one) may not be
// written now; c.wmu is held. A connection that has ended is reported as such first, since a
// message cut short by the end leaves the order state behind.
func (c *Conn) checkOrder(continuation bool) error {
	if err := c.ended(); err != nil {
		return err
	}
	if continuation != c.wOpen {
		return ErrFragmentOrder
	}
	return nil
}

// ended reports why nothing may be written any more: the write side failed, this side's
// close frame has gone out, or the stream is closed (a write would fail having sent nothing).
// c.wmu is held.
func (c *Conn) ended() error {
	if err := c.writeErr(); err != nil {
		return err
	}
	if c.is(closeSent | closed | writeCut) {
		return ErrClosed
	}
	return nil
}

// writeFrame writes one frame, header and payload, with as few writes as it can; c.wmu is
// held. Any write error leaves the stream broken mid-frame, so it ends the connection.
func (c *Conn) writeFrame(fin bool, op frame.Opcode, payload []byte) (int, error) {
	if err := c.writable(); err != nil {
		return 0, err
	}
	if op == frame.OpClose {
		// Before the write: the peer's answer may be read before the write returns.
		code, _, _ := frame.ParseClose(payload)
		c.noteClose(code, SideLocal)
	}
	n, err := c.writeWire(c.header(fin, false, op, len(payload)), payload)
	return c.wrote(fin, op, len(payload), n, err)
}

// header returns the header of a frame this side sends: a client's is masked with a fresh
// key.
func (c *Conn) header(fin, rsv1 bool, op frame.Opcode, n int) frame.Header {
	if c.role == Client {
		return frame.Header{Fin: fin, Rsv1: rsv1, Opcode: op, Length: int64(n), Masked: true, Key: newMaskKey()}
	}
	return frame.Header{Fin: fin, Rsv1: rsv1, Opcode: op, Length: int64(n)}
}

// writable reports why nothing may be written now, and refreshes the write deadline
// otherwise; c.wmu is held.
func (c *Conn) writable() error {
	if err := c.ended(); err != nil {
		return err
	}
	c.refreshWriteDeadline()
	return nil
}

// wrote records the outcome of writing one frame, of size payload bytes and n bytes on the
// wire; c.wmu is held.
func (c *Conn) wrote(fin bool, op frame.Opcode, size, n int, err error) (int, error) {
	if err != nil {
		return n, c.writeFailed(err)
	}
	c.stats.framesOut.Add(1)
	c.stats.bytesOut.Add(uint64(n))
	if op.IsData() {
		c.wOpen = !fin
		c.sentFrame(fin, size)
	}
	if op == frame.OpClose {
		c.set(closeSent)
	}
	return n, nil
}

// writeWire writes the frame h with payload and returns the bytes of it sent, as SendFrame
// counts them; c.wmu is held. A frame that fits the write buffer is encoded into the pending batch
// (flush.go); a larger one from a server goes out in one writev of the batch, its header and
// the caller's payload, and from a client, masked a buffer at a time, since the caller's bytes
// must not be masked in place.
func (c *Conn) writeWire(h frame.Header, payload []byte) (int, error) {
	hl := h.Len()
	if n := hl + len(payload); n <= c.cfg.wsize {
		b, err := c.room(n)
		if err != nil {
			return 0, err
		}
		frame.AppendHeader(b[:0], h)
		copy(b[hl:], payload)
		if h.Masked {
			frame.Mask(h.Key, 0, b[hl:])
		}
		return c.sendQueued(h.Opcode, n)
	}
	if !h.Masked {
		var pending []byte
		if b := c.pend; b != nil {
			pending = (*b.bufp)[:b.n]
			b.n = 0
		}
		v := vecWriters.Get()
		n, err := v.write(c, pending, h, payload)
		vecWriters.Put(v)
		if ferr := c.flush(); err == nil {
			err = ferr
		}
		return max(n-len(pending), 0), err
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	bp := pool.Get(c.cfg.wsize)
	defer pool.Put(bp)
	b := frame.AppendHeader((*bp)[:0], h)
	total, pos := 0, 0
	for len(b) > 0 || len(payload) > 0 {
		k := min(cap(b)-len(b), len(payload))
		start := len(b)
		b = append(b, payload[:k]...)
		pos = frame.Mask(h.Key, pos, b[start:])
		payload = payload[k:]
		n, err := c.writeStream(b)
		total += n
		if err != nil {
			return total, err
		}
		b = b[:0]
	}
	return total, nil
}

// sendQueued ends a frame of n bytes that has just been placed at the end of the pending batch
// with room, and returns the count its send reports: n once the batch holds it or has sent it,
// and the part of it the stream took if sending the batch failed. c.wmu is held.
func (c *Conn) sendQueued(op frame.Opcode, n int) (int, error) {
	at := c.pend.n - n // where the frame starts in the batch
	if err := c.queued(op); err != nil {
		return min(max(c.rare().wrote-at, 0), n), err
	}
	return n, nil
}

// Write timeouts. WriteTimeout bounds a stall, not a write: a frame of many megabytes to a slow
// reader may take far longer than WriteTimeout, as long as bytes keep going out. The stream's
// write deadline is moved forward lazily (refreshWriteDeadline), so that most writes make no
// deadline call; when a write times out, resume looks at what it achieved: one that made
// progress, or ran under a deadline set before it, goes on under a fresh WriteTimeout from
// where it stopped, and one that made no progress under a fresh WriteTimeout fails. A write
// therefore fails after at least WriteTimeout, and at most twice that, without progress.

// writeStream writes p to the stream, going on after timeouts as resume allows, and returns
// the bytes written; c.wmu is held. On a failure it records the count, for sendQueued.
func (c *Conn) writeStream(p []byte) (int, error) {
	n, err := c.rwc.Write(p)
	if err != nil {
		return c.writeRest(p, n, err)
	}
	return n, nil
}

// writeRest is writeStream after its first write failed having written n bytes.
func (c *Conn) writeRest(p []byte, n int, err error) (int, error) {
	total := n
	for fresh := false; c.resume(err, n, fresh); fresh = true {
		n, err = c.rwc.Write(p[total:])
		total += n
		if err == nil {
			return total, nil
		}
	}
	c.rare().wrote = total
	return total, err
}

// resume reports whether a write that failed with err, having written n bytes in its latest
// attempt, goes on, and gives it a fresh write deadline if so; fresh says whether that attempt
// ran under a deadline resume set. Only a timeout is resumed: any other error leaves the
// stream broken. c.wmu is held.
func (c *Conn) resume(err error, n int, fresh bool) bool {
	if c.cfg.writeTimeout <= 0 || (n == 0 && fresh) || !errors.Is(err, os.ErrDeadlineExceeded) || c.is(writeCut) {
		return false
	}
	dl := c.deadlines()
	if dl == nil {
		return false
	}
	c.wdl = monotonic() + c.cfg.writeTimeout
	return dl.SetWriteDeadline(time.Now().Add(c.cfg.writeTimeout)) == nil
}

// Contexts on message writes. A context that is done before a write begins refuses it, and
// nothing is written. Once the write has begun, a frame cannot be taken back half-sent, so a
// context that ends cuts the write and ends the connection: watchWrite's callback sets the
// writeCut bit, which stops every write from going on (ended, resume) or moving the write
// deadline (refreshWriteDeadline), and sets the write deadline in the past, which interrupts a
// write blocked on the stream at once; then it closes the stream as a failed write does.

// aLongTimeAgo is a deadline in the past, to interrupt a blocked read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// watchWrite arms ctx over a message write that begins now: once ctx is done, the write is
// cut and the connection ends. stop disarms it and reports whether ctx cut the write (the
// connection is then closed once stop returns). A context that cannot end costs nothing.
func (c *Conn) watchWrite(ctx context.Context) (stop func() bool) {
	if ctx.Done() == nil {
		return noCut
	}
	after := context.AfterFunc(ctx, c.cutWrite)
	return func() bool {
		if after() {
			return false
		}
		c.cutWrite() // the callback may still be on its way: the end is not left to it
		return true
	}
}

func noCut() bool { return false }

// cutWrite ends the connection for a write whose context has ended.
func (c *Conn) cutWrite() {
	c.set(writeCut)
	if dl := c.deadlines(); dl != nil {
		dl.SetWriteDeadline(aLongTimeAgo)
	} else {
		c.closeStream() // the only way to interrupt a write to this stream
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeFailed(ErrClosed)
}

// cutError is the error of a write that ctx cut: it matches ctx's error and ErrClosed.
func cutError(ctx context.Context) error {
	return fmt.Errorf("%w: write cut short by its context: %w", ErrClosed, ctx.Err())
}

// vecWriter writes a pending batch, a header and a payload with one writev, without copying
// the payload. It is pooled, so that the vector does not escape to the heap on every write.
var vecWriters pool.Of[vecWriter]

type vecWriter struct {
	hdr [frame.MaxHeaderLen]byte
	arr [3][]byte
	vec net.Buffers
}

// write writes the vector to c's stream, going on after timeouts as resume allows: WriteTo
// consumes what it wrote, so each attempt starts where the last one stopped. c.wmu is held.
func (v *vecWriter) write(c *Conn, pending []byte, h frame.Header, payload []byte) (int, error) {
	v.arr = [3][]byte{pending, frame.AppendHeader(v.hdr[:0], h), payload}
	v.vec = v.arr[:]
	n, err := v.vec.WriteTo(c.rwc)
	total := n
	for fresh := false; err != nil && c.resume(err, int(n), fresh); fresh = true {
		n, err = v.vec.WriteTo(c.rwc)
		total += n
	}
	v.arr = [3][]byte{} // keep no reference to the caller's payload
	return int(total), err
}

// writeFailed ends the connection after a write failed, which leaves the stream broken
// mid-frame, and returns the error later writes report; c.wmu is held.
func (c *Conn) writeFailed(err error) error {
	x := c.rare()
	if x.werr == nil {
		x.werr = err
		if c.is(closed | writeCut) {
			x.werr = ErrClosed // this side ended it: later writes say so
		}
	}
	c.closeStream()
	c.flushSent() // closeStream could not: this write holds the lock
	return x.werr
}

// refreshWriteDeadline moves the write deadline forward only when less than half of
// WriteTimeout is left, so most writes make no deadline call at all; resume makes up for a
// write that times out under a deadline set before it.
func (c *Conn) refreshWriteDeadline() {
	if c.cfg.writeTimeout <= 0 || c.is(writeCut) {
		return // after a cut, the deadline stays in the past
	}
	// A monotonic clock read is cheaper than time.Now.
	now := monotonic()
	if c.wdl-now >= c.cfg.writeTimeout/2 {
		return
	}
	if dl := c.deadlines(); dl != nil {
		c.wdl = now + c.cfg.writeTimeout
		dl.SetWriteDeadline(time.Now().Add(c.cfg.writeTimeout))
	}
}
