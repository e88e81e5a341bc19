package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// ReadMessage reads the next whole data message, reassembling its fragments, and returns its
// opcode (OpText or OpBinary) and dst with the payload appended; pass buf[:0] to reuse a
// buffer without allocating. Control frames met on the way go to the ping and pong handlers
// (by default a ping is answered with its payload), and a close frame completes the close
// handshake and returns a *CloseError.
//
// ctx bounds the call: its deadline becomes the read deadline, and cancelling it interrupts a
// blocked read. When the call ends that way, the part of the message read so far is kept by
// the Conn and the next ReadMessage continues the same message, so a timeout loses nothing;
// RecvFrame and NextReader refuse to start meanwhile (ErrReadMixed). Likewise ReadMessage
// refuses to continue a message that RecvFrame has begun to return.
func (c *Conn) ReadMessage(ctx context.Context, dst []byte) (frame.Opcode, []byte, error) {
	if err := c.readEnd(); err != nil {
		return 0, dst, err
	}
	r := c.lockRead()
	defer c.endCall()
	if r.err != nil {
		return 0, dst, r.err
	}
	release, err := c.bindContext(ctx)
	if err != nil {
		return 0, dst, err
	}
	defer release()
	// A message that takes several calls gathers in the spill's partial buffer, so that a
	// resumed call reads on instead of copying what earlier calls read: each call makes
	// progress, however short its deadline.
	var op frame.Opcode
	buf, start, resumed := dst, len(dst), false
	if sp := r.sp; sp != nil && sp.pOp != 0 {
		op, buf, start, resumed = sp.pOp, sp.partial, 0, true
	} else if r.inMsg && r.frames {
		return 0, dst, ErrReadMixed
	} else if op, err = c.nextMessage(); err != nil {
		return 0, dst, contextError(ctx, err)
	}
	r = c.rd // nextMessage may have waited with none
	for {
		var err error
		if r.zMsg {
			buf, err = c.zReadInto(buf)
		} else if err = c.advance(); err == nil {
			if len(buf) == cap(buf) {
				buf = growFor(buf, r.remaining)
			}
			var n int
			n, err = c.readPayload(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
		}
		switch {
		case err == io.EOF && resumed:
			dst = append(dst, buf...)
			r.sp.keepPartial(buf[:0], 0)
			return op, dst, nil
		case err == io.EOF:
			return op, buf, nil
		case err != nil && r.err != nil: // the connection has ended: nothing to resume
			if resumed {
				r.sp.keepPartial(nil, 0)
			}
			return 0, dst, contextError(ctx, err)
		case err != nil && resumed:
			r.sp.partial = buf
			return 0, dst, contextError(ctx, err)
		case err != nil:
			sp := r.spill()
			sp.keepPartial(append(sp.partial[:0], buf[start:]...), op)
			return 0, dst[:start], contextError(ctx, err)
		}
	}
}

// NextReader waits for the next data message and returns its opcode and a reader of its
// payload, reassembled across fragments and checked as it is read, for messages too large to
// hold. Control frames are handled as in ReadMessage. A message left unread is discarded by
// the next call. ctx bounds the wait for the message to start; its deadline also stays on the
// reads of the message.
func (c *Conn) NextReader(ctx context.Context) (frame.Opcode, io.Reader, error) {
	if err := c.readEnd(); err != nil {
		return 0, nil, err
	}
	r := c.lockRead()
	defer c.endCall()
	if r.err != nil {
		return 0, nil, r.err
	}
	release, err := c.bindContext(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer release()
	if (r.sp != nil && r.sp.pOp != 0) || (r.inMsg && r.frames) {
		return 0, nil, ErrReadMixed
	}
	op, err := c.nextMessage()
	if err != nil {
		return 0, nil, contextError(ctx, err)
	}
	return op, &messageReader{c: c, seq: c.seq}, nil
}

// nextMessage skips what is left of a message that was not read to its end, handles control
// frames, and stops at the first frame of the next data message.
func (c *Conn) nextMessage() (frame.Opcode, error) {
	if err := c.skipMessage(); err != nil {
		return 0, err
	}
	for {
		if err := c.waitIdle(); err != nil {
			return 0, err
		}
		r := c.rd
		if !r.inFrame {
			if err := c.readHeader(); err != nil {
				return 0, err
			}
			if r.inMsg || r.hdr.Opcode.IsData() {
				// 0 marks a finished messageReader, so the count skips it.
				if c.seq++; c.seq == 0 {
					c.seq = 1
				}
				return r.msgOp, nil
			}
			continue
		}
		payload, err := c.readControl()
		if err != nil {
			return 0, err
		}
		if err := c.control(r.hdr.Opcode, payload, true); err != nil {
			return 0, err
		}
	}
}

// skipMessage reads what is left of the current message and drops it, checking it as it
// would be checked if it were read.
func (c *Conn) skipMessage() error {
	r := c.rd
	if r.zMsg {
		sink := pool.Get(512)
		defer pool.Put(sink)
		for {
			if _, err := c.zRead(*sink); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
		}
	}
	for r.inMsg {
		if err := c.advance(); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if r.pos == r.end {
			if err := c.fill(1); err != nil {
				return err
			}
		}
		// Consume in place: these bytes are not handed out.
		if _, err := c.takeBuffered(int(min(r.remaining, int64(r.end-r.pos)))); err != nil {
			return err
		}
	}
	return nil
}

// advance reads headers and control frames until payload of the current message is ready to
// read (nil) or the message has ended (io.EOF).
func (c *Conn) advance() error {
	r := c.rd
	for {
		if r.inFrame {
			if r.hdr.Opcode.IsData() {
				return nil
			}
			payload, err := c.readControl()
			if err != nil {
				return err
			}
			if err := c.control(r.hdr.Opcode, payload, true); err != nil {
				return err
			}
			continue
		}
		if !r.inMsg {
			return io.EOF
		}
		if err := c.readHeader(); err != nil {
			return err
		}
	}
}

// messageReader is the io.Reader NextReader returns.
type messageReader struct {
	c   *Conn
	seq uint32
}

// Read reads message payload; it returns io.EOF at the end of the message, and also once a
// later NextReader has moved on.
func (m *messageReader) Read(p []byte) (int, error) {
	c := m.c
	if err := c.readEnd(); err != nil {
		return 0, err
	}
	r := c.lockRead()
	defer c.endCall()
	r.bounded = c.rdl
	if m.seq != c.seq {
		return 0, io.EOF
	}
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.zMsg {
		n, err := c.zRead(p)
		if err == io.EOF {
			m.seq = 0
		}
		return n, err
	}
	if err := c.advance(); err != nil {
		if err == io.EOF {
			m.seq = 0
		}
		return 0, err
	}
	return c.readPayload(p)
}

// bindContext applies ctx to the reads of one call: its deadline as the read deadline, and its
// cancellation as a deadline in the past. release must be called before the call returns.
func (c *Conn) bindContext(ctx context.Context) (release func(), err error) {
	t, _ := ctx.Deadline()
	if err := c.setReadDeadline(t); err != nil {
		return nil, err
	}
	c.rd.bounded = ctx.Done() != nil
	c.turnBegins()
	if ctx.Done() == nil {
		return noRelease, nil
	}
	dl := c.deadlines()
	if dl == nil {
		return noRelease, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, os.ErrDeadlineExceeded)
	}
	var mu sync.Mutex
	live := true
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if live {
			dl.SetReadDeadline(aLongTimeAgo)
			c.rdl = true
		}
	})
	return func() {
		stop()
		mu.Lock()
		live = false
		mu.Unlock()
	}, nil
}

func noRelease() {}

// contextError reports a read interrupted by ctx as ctx's error, still matching
// os.ErrDeadlineExceeded. The stream's deadline can fire just before ctx's own timer, so a
// passed deadline counts as ctx's expiry even while ctx.Err is still nil.
func contextError(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
