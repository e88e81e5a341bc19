package transport

import (
	"errors"
	"io"

	"github.com/ecows/ecows/deflate"
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// The receive side of permessage-deflate.
//
// A compressed message is inflated as its bytes arrive, from the read buffer in place: the
// inflater is fed what the buffer holds of the current frame, and the buffer is refilled from
// the stream only once it has consumed all of it. Memory therefore follows the bytes
// received, never the length a header declares, which is only checked against the limits.
// A read timeout can only strike while bytes are being read and never inside the
// decompressor, whose state could not survive an error (package deflate suspends it while the
// next bytes are read). A message whose only frame fits the read buffer, the common case, is
// read whole first and inflated directly.

// zReadCall is called as each read call starts: the payload RecvFrame returned before is no
// longer valid (see RecvFrame), so once its message has ended its buffer goes back to the
// pool, and a Conn waiting for its next message holds none.
func (c *Conn) zReadCall(r *reader) {
	if z := c.inflater(); z != nil && z.outp != nil && !r.zMsg {
		pool.Put(z.outp)
		z.outp = nil
	}
}

// close releases what z holds; reads fail from then on. RecvFrame's last payload may still
// be in use, so its buffer is left to the garbage collector, not pooled.
func (z *inflater) close() {
	z.z.Close()
	z.outp, z.outLen = nil, 0
}

// releaseInflater ends the inflater when the connection closes without a reader to do it.
func (c *Conn) releaseInflater() {
	if z := c.inflater(); z != nil && c.rmu.TryLock() {
		z.close()
		c.rmu.Unlock()
	}
}

// zBegin starts the compressed-message state for the first frame h of a data message.
func (c *Conn) zBegin(h frame.Header) {
	r := c.rd
	r.zMsg = h.Rsv1
	if !r.zMsg {
		return
	}
	c.ext.z.msgLen, r.zFed = 0, false
	c.ext.z.z.Begin()
}

// wireLimit is the limit on the wire bytes of the current message. A compressed message's
// inflated size is limited by MaxMessageLen as it is inflated; its compressed size may exceed
// that a little (deflate adds 5 bytes per stored block and per flush), but not without bound:
// otherwise a peer could stream empty blocks forever.
func (c *Conn) wireLimit() int64 {
	limit := c.rd.limit
	if c.rd.zMsg {
		return limit + limit>>3 + 1024
	}
	return limit
}

// zLoad feeds the inflater, once it has consumed what it was fed, the next bytes of the
// current frame of a compressed message: what the read buffer holds of it, read from the
// stream first when it holds none. They are inflated in place, and stay valid because nothing
// reads from the stream before the inflater has consumed them (it asks for more input first).
// The first bytes of a message whose only frame fits the read buffer are the whole frame, so
// that it is inflated directly. A timeout leaves the frame where it was, to be resumed by the
// next call.
func (c *Conn) zLoad() error {
	r, z := c.rd, c.ext.z
	need := min(r.remaining, 1)
	if !r.zFed && r.hdr.Fin && r.remaining <= int64(c.cfg.rsize) {
		need = r.remaining
	}
	if err := c.fill(int(need)); err != nil {
		return err
	}
	payload, err := c.takeBuffered(int(min(r.remaining, int64(r.end-r.pos))))
	if err != nil {
		return err
	}
	r.zPending, r.zFed = r.remaining > 0, true
	z.z.Feed(payload, r.hdr.Fin && !r.zPending)
	return nil
}

// zInflated accounts for b, freshly inflated: the message limit, checked before the message
// can grow past it, and UTF-8 for text.
func (c *Conn) zInflated(b []byte) error {
	r := c.rd
	c.ext.z.msgLen += int64(len(b))
	if limit := c.rd.limit; limit >= 0 && c.ext.z.msgLen > limit {
		return c.fail(errMessageTooBig)
	}
	if r.msgOp == frame.OpText {
		if _, err := r.utf8.Write(b); err != nil {
			return c.fail(frame.ErrInvalidUTF8)
		}
	}
	return nil
}

// zEnd ends a fully inflated message and returns io.EOF, or the error that ends the Conn.
func (c *Conn) zEnd() error {
	r := c.rd
	r.zMsg = false
	if r.msgOp == frame.OpText && r.utf8.Finish() != nil {
		return c.fail(frame.ErrInvalidUTF8)
	}
	c.receivedMessage(c.ext.z.msgLen, r.msgLen)
	return io.EOF
}

// zFailed maps an error of the inflater to the Conn's answer.
func (c *Conn) zFailed(err error) error {
	if errors.Is(err, deflate.ErrClosed) {
		return ErrClosed
	}
	return c.fail(errDeflate)
}

// zRoom trims p so that inflating into it can pass MaxMessageLen by one byte at most.
func (c *Conn) zRoom(p []byte) []byte {
	if limit := c.rd.limit; limit >= 0 {
		if room := limit - c.ext.z.msgLen + 1; int64(len(p)) > room {
			p = p[:room]
		}
	}
	return p
}

// zGrow makes room in b for more inflated bytes (zStep).
func (c *Conn) zGrow(b []byte) []byte {
	return append(b, make([]byte, c.zStep(len(b)))...)[:len(b)]
}

// zStep is how much room to add to a buffer of n inflated bytes: doubling, from 1 KiB, by at
// most 1 MiB at a time, and never further than MaxMessageLen allows.
func (c *Conn) zStep(n int) int {
	step := int64(min(max(n, 1024), 1<<20))
	if limit := c.rd.limit; limit >= 0 {
		step = max(min(step, limit-c.ext.z.msgLen+1), 1)
	}
	return int(step)
}

// zRead reads inflated data of the current compressed message into p (len(p) > 0), reading
// the message's next frames and handling control frames between them as needed, for
// ReadMessage and NextReader. It returns io.EOF at the end of the message.
func (c *Conn) zRead(p []byte) (int, error) {
	r, z := c.rd, c.ext.z
	for {
		if r.zPending && z.z.Consumed() {
			if err := c.zLoad(); err != nil {
				return 0, err
			}
		}
		n, err := z.z.Read(c.zRoom(p))
		if n > 0 {
			return n, c.zInflated(p[:n])
		}
		switch err {
		case io.EOF:
			return 0, c.zEnd()
		case deflate.ErrNeedInput:
			if r.zPending {
				continue // more of this frame
			}
			if err := c.zNextFrame(); err != nil {
				return 0, err
			}
		default:
			return 0, c.zFailed(err)
		}
	}
}

// zReadInto is zRead for ReadMessage: it appends to dst, growing it only once more data is
// known to come, so that a buffer as large as the message is enough.
func (c *Conn) zReadInto(dst []byte) ([]byte, error) {
	if len(dst) < cap(dst) {
		n, err := c.zRead(dst[len(dst):cap(dst)])
		return dst[:len(dst)+n], err
	}
	n, err := c.zRead(c.rd.one[:])
	if n == 1 {
		dst = append(c.zGrow(dst), c.rd.one[0])
	}
	return dst, err
}

// zNextFrame reads up to the header of the current message's next frame, handling control
// frames on the way as ReadMessage does.
func (c *Conn) zNextFrame() error {
	r := c.rd
	for !r.zPending {
		switch {
		case r.inFrame:
			payload, err := c.readControl()
			if err != nil {
				return err
			}
			if err := c.control(r.hdr.Opcode, payload, true); err != nil {
				return err
			}
		case !r.inMsg:
			return c.fail(errDeflate) // cannot happen: the final frame ends the inflater's input
		default:
			if err := c.readHeader(); err != nil {
				return err
			}
		}
	}
	return nil
}

// recvInflated is RecvFrame for a frame of a compressed message: the frame comes with its
// payload inflated, all that its bytes yield (the decompressor may hold some back until the
// next frame; the final frame brings the rest of the message). Length is set to the inflated
// length; Rsv1 is as on the wire, set on the first frame only. A timeout inside the frame keeps
// what was inflated, for the next call to complete.
func (c *Conn) recvInflated() (frame.Frame, error) {
	r, z := c.rd, c.ext.z
	h := r.hdr
	var out []byte
	if z.outp != nil {
		out = (*z.outp)[:z.outLen]
	}
	for {
		if r.zPending && z.z.Consumed() {
			if err := c.zLoad(); err != nil {
				z.outLen = len(out)
				return frame.Frame{}, err
			}
		}
		if len(out) == cap(out) {
			out = c.zGrowOut(out)
		}
		n, err := z.z.Read(c.zRoom(out[len(out):cap(out)]))
		if n > 0 {
			if err := c.zInflated(out[len(out) : len(out)+n]); err != nil {
				return frame.Frame{}, err
			}
			out = out[:len(out)+n]
			continue
		}
		switch {
		case err == deflate.ErrNeedInput && r.zPending:
			continue // more of this frame
		case err == io.EOF:
			err = c.zEnd()
		}
		if err == deflate.ErrNeedInput || err == io.EOF {
			break
		}
		return frame.Frame{}, c.zFailed(err)
	}
	z.outLen = 0
	h.Length = int64(len(out))
	return frame.Frame{Header: h, Payload: out}, nil
}

// zGrowOut moves out, RecvFrame's payload so far, to a larger pooled buffer (zStep), and gives
// the old one back.
func (c *Conn) zGrowOut(out []byte) []byte {
	z := c.ext.z
	b := pool.Get(len(out) + c.zStep(len(out)))
	copy(*b, out)
	if z.outp != nil {
		pool.Put(z.outp)
	}
	z.outp = b
	return (*b)[:len(out)]
}
