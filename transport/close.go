package transport

import (
	"context"
	"os"
	"time"

	"github.com/ecows/ecows/frame"
)

// readControl reads the current control frame's payload, whole, into the read buffer and
// returns it there: it is valid until the next read from the stream.
func (c *Conn) readControl() ([]byte, error) {
	r := c.rd
	n := int(r.hdr.Length)
	if err := c.fill(n); err != nil {
		return nil, err
	}
	payload, err := c.takeBuffered(n)
	if err != nil {
		return nil, err
	}
	r.inFrame = false
	return payload, nil
}

// control acts on a received control frame. In message mode (ReadMessage, NextReader) pings
// and pongs go to their handlers and a close ends the call with a *CloseError; for RecvFrame
// only the close frame needs acting on.
func (c *Conn) control(op frame.Opcode, payload []byte, message bool) error {
	switch op {
	case frame.OpPing:
		if !message {
			return nil
		}
		if c.cfg.onPing != nil {
			return c.cfg.onPing(c, payload)
		}
		if _, err := c.SendPong(payload); err != nil && err != ErrClosed {
			return c.sendFailed(err)
		}
	case frame.OpPong:
		c.pongArrived(payload)
		if message && c.cfg.onPong != nil {
			return c.cfg.onPong(c, payload)
		}
	case frame.OpClose:
		code, reason, err := frame.ParseClose(payload)
		if err != nil {
			return c.fail(err)
		}
		c.recvClose(code, reason)
		if message {
			return c.rd.err
		}
	}
	return nil
}

// recvClose completes the close handshake after the peer's close frame: it answers with the
// same code unless this side already sent its close, then ends the stream.
func (c *Conn) recvClose(code frame.CloseCode, reason string) {
	c.noteClose(code, SidePeer)
	c.rd.err = &CloseError{Code: code, Reason: reason}
	c.set(peerClosed)
	c.answerClose(code, "")
	deadline := c.closeDeadline()
	c.endLater(func() { c.endStream(deadline) })
}

// endStream closes the stream once both close frames have passed. RFC 6455 section 7.1.1 has
// the server close TCP first, so a client waits (until deadline) for the server's FIN.
func (c *Conn) endStream(deadline time.Time) {
	if c.role == Client {
		c.awaitEOF(deadline)
	}
	c.closeStream()
}

// awaitEOF discards what arrives until the peer closes its side or deadline passes.
func (c *Conn) awaitEOF(deadline time.Time) {
	dl := c.deadlines()
	if dl == nil {
		return
	}
	dl.SetReadDeadline(deadline)
	c.rd.pos, c.rd.end = 0, 0
	for c.fillRaw(1) == nil {
		c.rd.pos, c.rd.end = 0, 0
	}
}

// fail ends the connection after the peer broke the protocol: it sends the close code that
// err carries, reads on (bounded by CloseTimeout) to the peer's close frame so that unread
// bytes do not turn the TCP close into a reset that could destroy our close frame, and closes.
// Every later read returns err.
func (c *Conn) fail(err error) error {
	r := c.rd
	r.err = err
	if pe, ok := err.(*frame.ProtocolError); ok {
		c.answerClose(pe.Code, pe.Reason)
	}
	if err == frame.ErrLengthMSB || (r.inFrame && r.remaining > int64(r.end-r.pos)) {
		// Out of step with the frames: nothing after this can be parsed, or the peer may stop
		// sending the rest of the frame it announced once it reads our close, and its close
		// frame would be taken for payload. Send our FIN (a server closes first) and wait for
		// the peer's.
		if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok && c.role == Server {
			cw.CloseWrite()
		}
		deadline := c.closeDeadline()
		c.endLater(func() {
			c.awaitEOF(deadline)
			c.closeStream()
		})
		return err
	}
	deadline := c.closeDeadline()
	c.endLater(func() { c.drain(deadline) })
	return err
}

// endLater runs f, the rest of the read side's end, which waits for the peer: at once when
// the read call has no time bound, and otherwise once the call has returned (endCall), so
// that the call keeps its bound while the close handshake finishes without it.
func (c *Conn) endLater(f func()) {
	if c.rd.bounded {
		c.rd.tail = f
		return
	}
	f()
}

// endCall ends a read call begun with lockRead. When the call left the end of the read side to
// finish (endLater), a goroutine finishes it, holding the read side until it is done; later
// read calls get the error that ended the Conn at once (readEnd) instead of waiting for it.
func (c *Conn) endCall() {
	r := c.rd
	if r == nil || r.tail == nil {
		if r != nil && r.err == nil && r.end > r.pos {
			c.turnEnds()
		}
		c.unlockRead()
		return
	}
	f := r.tail
	r.tail = nil
	c.rare().rerr = r.err
	c.set(readEnded) // publishes rerr
	go func() {
		f()
		c.unlockRead()
	}()
}

// readEnd returns the error that ended the read side while its end finishes in the
// background (endCall), or nil.
func (c *Conn) readEnd() error {
	if c.is(readEnded) {
		return c.aux.Load().rerr
	}
	return nil
}

func (c *Conn) closeDeadline() time.Time {
	if c.cfg.closeTimeout < 0 {
		return time.Time{}
	}
	return time.Now().Add(c.cfg.closeTimeout)
}

// drain discards frames until the peer's close frame, then ends the stream. It is used once
// this side has sent its close frame; the caller holds rmu.
func (c *Conn) drain(deadline time.Time) {
	r := c.rd
	if dl := c.deadlines(); dl != nil {
		dl.SetReadDeadline(deadline)
	}
	for {
		for r.inFrame && r.remaining > 0 {
			if r.end == r.pos && c.fillRaw(1) != nil {
				c.closeStream()
				return
			}
			n := int(min(r.remaining, int64(r.end-r.pos)))
			r.pos += n
			r.remaining -= int64(n)
		}
		r.inFrame = false
		if c.isPeerClose(r.hdr) {
			c.set(peerClosed)
			break
		}
		h, n, err := frame.DecodeHeader(r.buf[r.pos:r.end])
		if err == frame.ErrShortHeader {
			if c.fillRaw(n) != nil {
				c.closeStream()
				return
			}
			continue
		}
		if err == frame.ErrLengthMSB {
			break
		}
		r.pos += n
		r.hdr, r.inFrame, r.remaining = h, true, h.Length
		c.stats.framesIn.Add(1)
		c.stats.bytesIn.Add(uint64(n) + uint64(h.Length))
	}
	c.endStream(deadline)
}

// isPeerClose reports whether h, whose payload has been read, is a valid close frame: one
// with RSV bits or the wrong masking is a violation, not the peer's half of the handshake.
func (c *Conn) isPeerClose(h frame.Header) bool {
	return h.Opcode == frame.OpClose && h.Fin && !h.Rsv1 && !h.Rsv2 && !h.Rsv3 && h.Masked == (c.role == Server)
}

// SendClose sends a close frame with code and reason, the seed's send_close, and returns the
// bytes sent (see SendFrame). It does not wait for the peer's answer (Close does).
// CloseNoStatus (or 0) with no reason sends an empty close frame. A code that may not be on
// the wire (ErrCloseCode) or a reason over 123 bytes or not UTF-8 (ErrCloseReason) is refused
// and nothing is sent. After it, data sends return ErrClosed.
func (c *Conn) SendClose(code frame.CloseCode, reason string) (int, error) {
	n, _, err := c.sendClose(code, reason)
	return n, err
}

// sendClose is SendClose that also says whether the arguments were refused.
func (c *Conn) sendClose(code frame.CloseCode, reason string) (n int, refused bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.is(closeSent) {
		return 0, false, ErrClosed
	}
	return c.writeClose(code, reason)
}

// answerClose sends the reader's own close frame (the echo of the peer's, or the answer to a
// violation) unless a close frame went out already or the write side has failed.
func (c *Conn) answerClose(code frame.CloseCode, reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ended() == nil {
		c.writeClose(code, reason)
	}
}

// writeClose encodes and writes a close frame, and says whether code and reason were refused
// (then nothing is written); c.wmu is held.
func (c *Conn) writeClose(code frame.CloseCode, reason string) (n int, refused bool, err error) {
	var b [frame.MaxControlPayload]byte
	payload, err := frame.AppendClose(b[:0], code, reason)
	if err != nil {
		return 0, true, closeUsage(err)
	}
	n, err = c.writeFrame(true, frame.OpClose, payload)
	return n, false, err
}

// Close runs the close handshake: it sends a close frame with code and reason (unless one was
// sent already), waits up to CloseTimeout for the peer's close frame, discarding data that
// arrives first, and closes the stream. If another goroutine is blocked reading, Close leaves
// the reading to it (that read returns the peer's close) and waits for the stream to end;
// otherwise Close reads the answer itself and later reads return ErrClosed. A reader that
// must see the peer's close frame should call SendClose and keep reading instead. It returns
// nil when the peer answered, a *CloseError with code 1006 when it did not, ErrCloseCode or
// ErrCloseReason (and sends nothing) for a code or reason that cannot be sent, as SendClose
// does, and ErrClosed once the stream has already ended.
func (c *Conn) Close(code frame.CloseCode, reason string) error {
	if _, refused, err := c.sendClose(code, reason); refused {
		return err
	} else if err != nil && (c.streamClosed() || c.is(readEnded)) {
		// Nothing was sent now: the connection had ended already, or its end is finishing
		// without a caller (endCall).
		return ErrClosed
	}
	deadline := c.closeDeadline()
	if r, ok := c.tryLockRead(); ok {
		if r.err == nil {
			r.err = ErrClosed
			c.drain(deadline)
		}
		c.unlockRead()
	} else {
		var expire <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			expire = t.C
		}
		select {
		case <-c.Done():
		case <-expire:
		}
	}
	c.closeStream()
	if c.is(peerClosed) {
		return nil
	}
	return &CloseError{Code: frame.CloseAbnormal, Err: os.ErrDeadlineExceeded}
}

// CloseNow closes the stream at once, without a close handshake. Reads and writes blocked in
// other goroutines return. Frames written before it that were waiting to be sent together
// (see Options.FlushDelay) are sent first, unless another goroutine is writing. Once a read
// call has ended the connection and left the last of the close handshake to finish without
// it (within CloseTimeout; see RecvFrame), CloseNow lets it finish and returns ErrClosed:
// closing first could turn the TCP close into a reset that destroys the close frame, and a
// client must let the server close first.
func (c *Conn) CloseNow() error {
	if c.is(readEnded) {
		return ErrClosed
	}
	c.flushWaiting() // what was written before goes out first
	err := c.closeStream()
	c.releaseInflater()
	return err
}

// CloseRead is for a Conn that only writes, as coder/websocket's CloseRead: it reads in a
// goroutine of its own, so that the peer's pings are answered (by Options.PingHandler, by
// default with a pong) and its close frame completes the close handshake, and returns a
// context, derived from ctx, that is cancelled when that reading ends, which it does when the
// Conn ends. A data message from the peer is a policy violation: the Conn closes with 1008
// Policy Violation. Once ctx is done, the reading stops and the Conn is closed at once
// (CloseNow); Close, from any goroutine, closes it with a handshake. Call it once, and make
// no other read call after it. Its goroutine ends with the Conn.
func (c *Conn) CloseRead(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		// NextReader answers control frames and returns at the first data message.
		if _, _, err := c.NextReader(ctx); err == nil {
			c.Close(frame.ClosePolicyViolation, "unexpected data message")
		}
		c.CloseNow()
	}()
	return ctx
}
