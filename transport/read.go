package transport

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/ecows/ecows/frame"
)

// RecvFrame reads one frame, the seed's recv_frame. Data frames come as they are on the wire:
// a fragment has Fin false, and the rest of its message follows in OpContinuation frames.
// Control frames, which may arrive between fragments, are returned too; a ping is not answered
// here (see ReadMessage and the middleware package). A close frame is answered (echoing its
// code) before it is returned, and later calls return a *CloseError.
//
// timeout bounds the call; zero means no bound, and it replaces any deadline set before. When
// it expires the error matches os.ErrDeadlineExceeded and the Conn stays usable: the next call
// continues where the stream stopped, even inside a header or payload. The bound holds when
// the frame ends the connection too: what is left of the close handshake (waiting, within
// CloseTimeout, for the peer's close frame after a violation, or for a server's FIN after its
// close) goes on without the caller, and later calls return the same error at once. ReadMessage
// and NextReader do the same when their context has a deadline or can be cancelled.
//
// The payload is unmasked, and it is valid only until the next read call on c: it may live in
// a read buffer that c borrows from a pool and gives back when it waits for more input, which
// is what lets steady-state reading allocate nothing and an idle Conn hold no buffer. After
// that call the same memory may hold another connection's data: copy what you keep. A text message's
// bytes are checked as UTF-8 as they arrive, across fragments.
//
// With permessage-deflate, the frames of a compressed message (Rsv1 set on its first frame)
// come inflated: Payload holds what the frame's bytes inflate to, inflated incrementally as
// the DEFLATE stream continues across fragments, and Length is its length. The decompressor
// may hold output back until the next fragment, so the message can be split differently from
// the sender's split; the final frame brings the rest. MaxMessageLen applies to the inflated
// message, and MaxPayloadLen to each frame's compressed payload.
func (c *Conn) RecvFrame(timeout time.Duration) (frame.Frame, error) {
	if err := c.readEnd(); err != nil {
		return frame.Frame{}, err
	}
	c.lockRead()
	defer c.endCall()
	if err := c.startRead(timeout); err != nil {
		return frame.Frame{}, err
	}
	if err := c.waitIdle(); err != nil {
		return frame.Frame{}, err
	}
	r := c.rd
	if sp := r.sp; sp != nil {
		if sp.pOp != 0 {
			return frame.Frame{}, ErrReadMixed
		}
		if r.got == 0 && cap(sp.fbuf) > maxKeptSpill {
			sp.fbuf = nil // the last call's large payload is not kept for the life of the Conn
		}
	}
	if r.zMsg && !r.zPending && !r.inFrame && !c.ext.z.z.Hungry() {
		// NextReader stopped inside a compressed message: hand out what is left of its frame.
		return c.recvInflated()
	}
	if !r.inFrame {
		if err := c.readHeader(); err != nil {
			return frame.Frame{}, err
		}
	}
	h := r.hdr
	if h.Opcode.IsControl() {
		payload, err := c.readControl()
		if err == nil && h.Opcode == frame.OpClose {
			// The read side ends here and gives its buffer back: keep a copy.
			sp := r.spill()
			payload = append(sp.fbuf[:0], payload...)
			sp.fbuf = payload[:0]
		}
		if err == nil {
			err = c.control(h.Opcode, payload, false)
		}
		return frame.Frame{Header: h, Payload: payload}, err
	}
	r.frames = true
	if r.zMsg {
		return c.recvInflated()
	}
	if r.got == 0 && int64(r.end-r.pos) >= r.remaining {
		// The whole payload is buffered: hand it out in place.
		payload, err := c.takeBuffered(int(r.remaining))
		if err != nil {
			return frame.Frame{}, err
		}
		return frame.Frame{Header: h, Payload: payload}, nil
	}
	sp := r.spill()
	for int64(r.got) < h.Length {
		if r.got == cap(sp.fbuf) {
			sp.fbuf = growFor(sp.fbuf[:r.got], h.Length-int64(r.got))
		}
		n, err := c.readPayload(sp.fbuf[r.got:cap(sp.fbuf)])
		r.got += n
		if err != nil {
			return frame.Frame{}, err
		}
	}
	payload := sp.fbuf[:r.got]
	r.got = 0
	return frame.Frame{Header: h, Payload: payload}, nil
}

// startRead sets the read deadline for a call and reports a sticky error.
func (c *Conn) startRead(timeout time.Duration) error {
	if c.rd.err != nil {
		return c.rd.err
	}
	var t time.Time
	if timeout > 0 {
		t = time.Now().Add(timeout)
	}
	c.rd.bounded = timeout > 0
	c.turnBegins()
	return c.setReadDeadline(t)
}

func (c *Conn) setReadDeadline(t time.Time) error {
	if t.IsZero() && !c.rdl {
		return nil
	}
	dl := c.deadlines()
	if dl == nil {
		if t.IsZero() {
			return nil
		}
		return ErrDeadlineUnsupported
	}
	c.rdl = !t.IsZero()
	return dl.SetReadDeadline(t)
}

// fill reads from the stream until at least need bytes are buffered, sending the pending
// batch first (flushForRead).
func (c *Conn) fill(need int) error {
	if c.rd.end-c.rd.pos >= need {
		return nil
	}
	if err := c.flushForRead(); err != nil {
		return err
	}
	if err := c.fillRaw(need); err != nil {
		return c.readFailed(err)
	}
	return nil
}

// fillRaw is fill without classifying the error, for reads after the Conn has failed. When
// the buffer is empty and the stream can be read directly, the read gives the buffer back if
// it has to wait (readRaw), so that a Conn waiting for its peer holds none; need is never
// more than a header or a control frame, which always fit.
func (c *Conn) fillRaw(need int) error {
	r := c.rd
	if r.end-r.pos >= need {
		return nil
	}
	switch {
	case r.pos == r.end:
		r.pos, r.end = 0, 0
	case len(r.buf)-r.pos < need:
		r.end = copy(r.buf, r.buf[r.pos:r.end])
		r.pos = 0
	}
	for r.end-r.pos < need {
		var n int
		var err error
		switch {
		case c.raw != nil && r.end == 0:
			err = c.readRaw()
		case r.bufp != nil:
			n, err = c.rwc.Read(r.buf[r.end:])
		default:
			r.acquire(c.cfg.rsize)
			continue
		}
		r.end += n
		if err != nil {
			if r.end-r.pos >= need {
				return nil
			}
			return err
		}
	}
	return nil
}

// flushForRead sends the pending batch before the reader waits for the network: the peer may
// be waiting for it before it sends more. A failed write ends the read side.
func (c *Conn) flushForRead() error {
	if err := c.flushWaiting(); err != nil {
		return c.sendFailed(err)
	}
	return nil
}

// sendFailed ends the read side after a write the reader made (a pong, the pending batch)
// failed and closed the stream. It reports the end, not the write's timeout, which would
// read as a read timeout that leaves the Conn usable.
func (c *Conn) sendFailed(err error) error {
	if err != ErrClosed {
		err = &CloseError{Code: frame.CloseAbnormal, Err: err}
	}
	c.rd.err = err
	return err
}

// readFailed classifies an error from the stream. A timeout leaves the Conn as it is; other
// errors end it, as an abnormal closure unless this side closed it.
func (c *Conn) readFailed(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	r := c.rd
	switch {
	case c.streamClosed() || c.is(closeSent):
		r.err = ErrClosed
	case err == io.EOF && (r.inFrame || r.end > r.pos):
		r.err = &CloseError{Code: frame.CloseAbnormal, Err: io.ErrUnexpectedEOF}
	default:
		r.err = &CloseError{Code: frame.CloseAbnormal, Err: err}
	}
	c.closeStream()
	return r.err
}

// readHeader reads and checks the next frame header and starts its payload.
func (c *Conn) readHeader() error {
	r := c.rd
	for {
		h, n, err := frame.DecodeHeader(r.buf[r.pos:r.end])
		if err == frame.ErrShortHeader {
			if err := c.fill(n); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if err != frame.ErrLengthMSB {
				r.pos += n
				r.hdr, r.inFrame, r.remaining = h, true, h.Length
			}
			return c.fail(err)
		}
		r.pos += n
		r.hdr, r.inFrame, r.remaining, r.maskPos = h, true, h.Length, 0
		c.stats.framesIn.Add(1)
		c.stats.bytesIn.Add(uint64(n) + uint64(h.Length))
		return c.checkHeader(h)
	}
}

// checkHeader applies the rules that depend on the connection: masking by role, RSV bits,
// fragment order and size limits.
func (c *Conn) checkHeader(h frame.Header) error {
	r := c.rd
	switch {
	case h.Rsv2 || h.Rsv3 || h.Rsv1 && c.inflater() == nil:
		return c.fail(errRSV)
	case h.Rsv1 && (h.Opcode.IsControl() || h.Opcode == frame.OpContinuation):
		return c.fail(errRSV1) // RFC 7692 section 6: only a message's first frame may carry it
	case h.Masked != (c.role == Server):
		if c.role == Server {
			return c.fail(errUnmasked)
		}
		return c.fail(errMasked)
	case c.cfg.maxPayload >= 0 && h.Length > c.cfg.maxPayload:
		return c.fail(frame.ErrTooBig)
	case h.Opcode.IsControl():
		return nil // readControl reads it, even when empty
	case h.Opcode == frame.OpContinuation && !r.inMsg:
		return c.fail(errContinuation)
	case h.Opcode != frame.OpContinuation && r.inMsg:
		return c.fail(errInterleaved)
	}
	if h.Opcode != frame.OpContinuation {
		r.inMsg, r.msgOp, r.msgLen, r.frames, r.limit = true, h.Opcode, 0, false, c.readLimit()
		r.utf8.Reset()
		if c.inflater() != nil {
			c.zBegin(h)
		}
	}
	r.zPending = r.zMsg
	r.msgLen += h.Length
	if r.limit >= 0 && r.msgLen > c.wireLimit() {
		return c.fail(errMessageTooBig)
	}
	if r.remaining == 0 {
		return c.frameDone()
	}
	return nil
}

// Violations found by checkHeader.
var (
	errRSV           = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "RSV bit set without an extension"}
	errUnmasked      = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "unmasked frame from client"}
	errMasked        = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "masked frame from server"}
	errContinuation  = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "continuation without a message to continue"}
	errInterleaved   = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "new data frame inside a fragmented message"}
	errMessageTooBig = &frame.ProtocolError{Code: frame.CloseMessageTooBig, Reason: "message over the size limit"}
)

// readPayload reads up to len(p) bytes of the current frame's payload into p, unmasks them
// and checks text as it goes.
func (c *Conn) readPayload(p []byte) (int, error) {
	r := c.rd
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	switch {
	case r.end > r.pos:
		n = copy(p, r.buf[r.pos:r.end])
		r.pos += n
	case len(p) >= c.cfg.rsize:
		// Large reads skip the buffer rather than copy through it.
		if err := c.flushForRead(); err != nil {
			return 0, err
		}
		var err error
		n, err = c.rwc.Read(p)
		if err != nil && n == 0 {
			return 0, c.readFailed(err)
		}
	default:
		if err := c.fill(1); err != nil {
			return 0, err
		}
		n = copy(p, r.buf[r.pos:r.end])
		r.pos += n
	}
	return n, c.consumed(p[:n])
}

// takeBuffered hands out the next n payload bytes of the current frame in place, from the
// read buffer, which must hold them, unmasked and checked.
func (c *Conn) takeBuffered(n int) ([]byte, error) {
	r := c.rd
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, c.consumed(b)
}

// consumed unmasks and checks b, the next payload bytes of the current frame, taken from the
// stream, and ends the frame when it is complete.
func (c *Conn) consumed(b []byte) error {
	r := c.rd
	if r.hdr.Masked {
		r.maskPos = frame.Mask(r.hdr.Key, r.maskPos, b)
	}
	r.remaining -= int64(len(b))
	if r.msgOp == frame.OpText && r.hdr.Opcode.IsData() && !r.zMsg {
		if _, err := r.utf8.Write(b); err != nil {
			return c.fail(frame.ErrInvalidUTF8)
		}
	}
	if r.remaining == 0 && len(b) > 0 {
		return c.frameDone()
	}
	return nil
}

// frameDone ends the current frame and, with a final data frame, its message.
func (c *Conn) frameDone() error {
	r := c.rd
	r.inFrame = false
	if !r.hdr.Opcode.IsData() || !r.hdr.Fin {
		return nil
	}
	r.inMsg = false
	if r.zMsg {
		return nil // zEnd ends it, once inflated
	}
	if r.msgOp == frame.OpText && r.utf8.Finish() != nil {
		return c.fail(frame.ErrInvalidUTF8)
	}
	c.receivedMessage(r.msgLen, r.msgLen)
	return nil
}

// waitIdle waits for the peer's next bytes when the reader stands between messages with
// nothing buffered. The batch goes out first, as in fill. On a stream read directly, the
// Conn gives its reader state and buffer back for the wait (rawRead), so that a connection
// waiting for its peer holds neither, and takes a reader again before it returns: callers
// must not keep a pointer to the old one across the call.
func (c *Conn) waitIdle() error {
	if c.raw == nil || !c.rd.between() {
		return nil
	}
	r := c.rd
	if err := c.flushForRead(); err != nil {
		return err
	}
	r.pos, r.end = 0, 0
	c.idle = true
	err := c.readRaw()
	c.idle = false
	c.holdReader()
	if err != nil {
		return c.readFailed(err)
	}
	return nil
}

// readRaw reads the stream into the empty buffer, giving the buffer back while it waits for
// the stream to be readable and borrowing one again once it is. The callback sets c.rd.end
// to what it read.
func (c *Conn) readRaw() error {
	c.rd.rawErr = nil
	if err := c.raw.Read(c.rawFn); err != nil {
		return err
	}
	return c.rd.rawErr
}

// growStep is the first step by which growFor grows a buffer.
const growStep = 16 << 10

// growFor makes more room in b, where n more bytes are declared by the current frame's
// header. The new room is what b holds already, so that the buffer doubles as bytes arrive,
// or when b is small, the declared bytes up to growStep: a buffer never grows past twice the
// bytes actually received, plus growStep, and a header declaring a large payload commits no
// memory before the payload arrives.
func growFor(b []byte, n int64) []byte {
	room := max(len(b), int(min(n, growStep)))
	nb := make([]byte, len(b), len(b)+room)
	copy(nb, b)
	return nb
}
