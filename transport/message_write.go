package transport

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// WriteMessage sends p as one data message (OpText or OpBinary, else ErrOpcode), in fragments
// of at most MaxPayloadLen bytes when it is larger, and returns the bytes sent, headers
// included, counted as SendFrame counts them. It sends nothing, and returns a *UsageError, for
// text that is not valid UTF-8 (ErrInvalidUTF8) or a message over MaxMessageLen
// (ErrMessageTooLarge), the limit the Conn applies to the messages it receives, so that an
// ecows peer with the same options accepts what this one sends. Other messages from other
// goroutines wait; control frames may go out between its fragments. With permessage-deflate,
// p is compressed unless it is shorter than the threshold or SetCompression turned
// compression off; the compressed bytes are fragmented at MaxPayloadLen, and MaxMessageLen
// applies to p, as the receiver applies it to the inflated message.
//
// ctx bounds the write. A ctx that is done before the write begins, or while it waits for
// another goroutine's message, gets its error (ctx.Err()), nothing is written and the Conn
// goes on. One that ends while the message is being written cuts it short: a frame cannot be
// left half-sent, so the write stops at once and the Conn closes, and the error matches both
// ctx.Err() and ErrClosed (errors.Is), as do later writes' errors (ErrClosed). WriteTimeout
// applies too. A ctx that can end costs an allocation per call; context.Background costs none.
func (c *Conn) WriteMessage(ctx context.Context, op frame.Opcode, p []byte) (int, error) {
	if op != frame.OpText && op != frame.OpBinary {
		return 0, ErrOpcode
	}
	if err := c.checkMessage(op, p); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	stop := c.watchWrite(ctx)
	n, err := c.writeMessage(op, p)
	if stop() {
		return n, cutError(ctx)
	}
	return n, err
}

// writeMessage is WriteMessage once the checks are done; c.msgMu is held.
func (c *Conn) writeMessage(op frame.Opcode, p []byte) (int, error) {
	if c.compressing(len(p)) {
		return c.writeCompressed(op, p)
	}
	total := 0
	for first := true; first || len(p) > 0; first = false {
		chunk := p
		if c.cfg.maxPayload >= 0 && int64(len(chunk)) > c.cfg.maxPayload {
			chunk = chunk[:c.cfg.maxPayload]
		}
		p = p[len(chunk):]
		n, err := c.writeFragment(first, len(p) == 0, op, chunk)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// writeFragment writes one frame of a message whose writer holds msgMu.
func (c *Conn) writeFragment(first, fin bool, op frame.Opcode, p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.checkOrder(!first); err != nil {
		return 0, err
	}
	if !first {
		op = frame.OpContinuation
	}
	return c.writeFrame(fin, op, p)
}

// NextWriter starts a data message (OpText or OpBinary, else ErrOpcode) and returns a writer
// for its payload, sent in fragments as the writer's buffer fills; Close sends the final
// fragment and must be called. Until then, other messages wait. With permessage-deflate the
// message is compressed unless it ends, within the first buffer, shorter than the threshold.
//
// The writer checks what it is given as it goes. Text is checked as UTF-8: a Write with
// invalid UTF-8 is refused whole with ErrInvalidUTF8 and the writer stays usable. The message
// may not grow past MaxMessageLen (uncompressed, as the receiver counts it): the Write (or the
// read of ReadFrom) that would take it past is refused whole with ErrMessageTooLarge, and so
// is a Close that finds the text ending inside a UTF-8 sequence, with ErrInvalidUTF8. Either
// refusal abandons the message, since sending its end would pass off the part written as the
// whole: later Writes return the same error, and Close sends nothing and returns it too. If no
// fragment has gone out yet the message is simply dropped and the connection goes on; if some
// have, the peer cannot be told that the message will not end but by closing, so the Conn
// sends a close frame with 1011 Internal Error (after which sends return ErrClosed, and the
// connection ends as after SendClose).
//
// ctx bounds the message, from NextWriter to Close, as it bounds WriteMessage: a ctx done
// before the message begins gets its error and no writer; one that ends before Close returns
// cuts the message short and closes the Conn, and the writer's calls return an error that
// matches both ctx.Err() and ErrClosed.
func (c *Conn) NextWriter(ctx context.Context, op frame.Opcode) (io.WriteCloser, error) {
	if op != frame.OpText && op != frame.OpBinary {
		return nil, ErrOpcode
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.msgMu.Lock()
	if err := ctx.Err(); err != nil {
		c.msgMu.Unlock()
		return nil, err
	}
	w := messageWriters.Get()
	w.c, w.ctx, w.stop = c, ctx, c.watchWrite(ctx)
	// Each full buffer goes out as one fragment, header included, in one write.
	size := c.cfg.wsize - frame.MaxHeaderLen
	if c.cfg.maxPayload >= 0 {
		size = int(min(int64(size), c.cfg.maxPayload))
	}
	w.bufp = pool.Get(size)
	w.op, w.first, w.open, w.buf, w.zerr = op, true, true, (*w.bufp)[:0:size], nil
	w.n, w.failed = 0, nil
	w.utf8.Reset()
	return &messageHandle{w: w, gen: w.gen.Add(1)}, nil
}

// messageHandle is the io.WriteCloser NextWriter returns: one message of a pooled message
// writer. Its generation tells a handle kept after Close from the current one, so that it
// cannot write into, or end, a later message, of this Conn or of another.
type messageHandle struct {
	w   *messageWriter
	gen uint64
}

// Write buffers p and sends full buffers as fragments, and returns the bytes of p it took.
// Invalid UTF-8 in a text message is refused (nothing of p is taken) and the writer stays
// usable; a p that would take the message over MaxMessageLen is refused and abandons the
// message (see NextWriter).
func (h *messageHandle) Write(p []byte) (int, error) {
	if h.w.gen.Load() != h.gen {
		return 0, ErrClosed
	}
	n, err := h.w.Write(p)
	return n, h.w.cut(err)
}

// ReadFrom copies r into the message until io.EOF, reading straight into the writer's buffer,
// so io.Copy to a message allocates nothing.
func (h *messageHandle) ReadFrom(r io.Reader) (int64, error) {
	if h.w.gen.Load() != h.gen {
		return 0, ErrClosed
	}
	n, err := h.w.readFrom(r)
	return n, h.w.cut(err)
}

// Close sends the final fragment and lets other messages go. A text message that ends inside
// a UTF-8 sequence is abandoned instead (see NextWriter) and Close returns ErrInvalidUTF8; a
// message abandoned earlier gets the error that abandoned it. Closing again, or after another
// message has started, returns ErrClosed.
func (h *messageHandle) Close() error {
	if h.w.gen.Load() != h.gen {
		return ErrClosed
	}
	return h.w.Close()
}

// messageWriter is the state of the message being written, borrowed for one message.
type messageWriter struct {
	c      *Conn // nil while pooled
	ctx    context.Context
	stop   func() bool   // disarms ctx (watchWrite)
	gen    atomic.Uint64 // counts messages; a handle of an earlier one is stale
	op     frame.Opcode
	first  bool
	open   bool
	bufp   *[]byte // borrowed for the message
	buf    []byte
	utf8   frame.UTF8
	z      bool  // the message is compressed
	zerr   error // a compressed message failed part way
	n      int64 // payload bytes taken, against MaxMessageLen
	failed error // the *UsageError that abandoned the message
}

var messageWriters pool.Of[messageWriter]

func (w *messageWriter) Write(p []byte) (int, error) {
	if !w.open {
		return 0, ErrClosed
	}
	if w.failed != nil {
		return 0, w.failed
	}
	if limit := w.c.cfg.maxMessage; limit >= 0 && int64(len(p)) > limit-w.n {
		return 0, w.abandon(ErrMessageTooLarge)
	}
	if w.op == frame.OpText {
		v := w.utf8
		if _, err := v.Write(p); err != nil {
			return 0, ErrInvalidUTF8
		}
		w.utf8 = v
	}
	written := 0
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(false); err != nil {
				return written, err
			}
		}
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		written += n
		w.n += int64(n)
	}
	return written, nil
}

func (w *messageWriter) readFrom(r io.Reader) (int64, error) {
	if !w.open {
		return 0, ErrClosed
	}
	if w.failed != nil {
		return 0, w.failed
	}
	var total int64
	for {
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(false); err != nil {
				return total, err
			}
		}
		start := len(w.buf)
		end := cap(w.buf)
		if limit := w.c.cfg.maxMessage; limit >= 0 {
			// One byte past the limit is enough to tell that the message would pass it.
			end = start + int(min(int64(end-start), limit-w.n+1))
		}
		n, err := r.Read(w.buf[start:end])
		if w.c.cfg.maxMessage >= 0 && int64(n) > w.c.cfg.maxMessage-w.n {
			w.buf = w.buf[:start]
			return total, w.abandon(ErrMessageTooLarge)
		}
		if n > 0 && w.op == frame.OpText {
			v := w.utf8
			if k, verr := v.Write(w.buf[start : start+n]); verr != nil {
				// Take the text before the bad byte, and nothing from it on.
				w.utf8.Write(w.buf[start : start+k])
				w.buf = w.buf[:start+k]
				w.n += int64(k)
				return total + int64(k), ErrInvalidUTF8
			}
			w.utf8 = v
		}
		w.buf = w.buf[:start+n]
		w.n += int64(n)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (w *messageWriter) Close() error {
	if !w.open {
		return ErrClosed
	}
	err := w.failed
	if err == nil && w.op == frame.OpText && w.utf8.Finish() != nil {
		err = w.abandon(ErrInvalidUTF8)
	}
	if err == nil {
		err = w.flush(true)
	}
	if w.stop() {
		err = cutError(w.ctx)
	}
	// The handle of this message goes stale before w goes back to the pool.
	c := w.c
	w.open = false
	pool.Put(w.bufp)
	w.bufp, w.buf, w.c, w.ctx, w.stop = nil, nil, nil, nil, nil
	w.gen.Add(1)
	messageWriters.Put(w)
	c.msgMu.Unlock()
	return err
}

// cut returns the error of a call of the writer: the cut's error once ctx has cut the message
// short (watchWrite), else err.
func (w *messageWriter) cut(err error) error {
	if err != nil && w.c.is(writeCut) && w.ctx.Err() != nil {
		return cutError(w.ctx)
	}
	return err
}

// abandon gives up the message for err, a *UsageError, without a final fragment that would
// pass off what was written as the whole message, and returns err, which later calls return
// too. A message none of which has gone out is dropped; one that has gone out in part can only
// be cut short by closing, with 1011, the peer's fault being none.
func (w *messageWriter) abandon(err error) error {
	c := w.c
	w.failed, w.buf = err, w.buf[:0]
	if w.z && !w.first && w.zerr == nil {
		// The compressor has started: release it, sending nothing more (deflate.go).
		c.zFinishWrite(err)
		w.zerr = err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// A first fragment has gone out (even compressed) once wOpen is set after this message
	// took its first buffer; before, wOpen could only be a fragmented SendFrame's.
	if !w.first && c.wOpen && c.ended() == nil {
		c.writeClose(frame.CloseInternalError, "message abandoned")
	}
	return err
}

func (w *messageWriter) flush(fin bool) error {
	if w.first {
		n := len(w.buf)
		if !fin {
			n = -1
		}
		w.z = w.c.compressing(n)
	}
	if w.z {
		return w.flushCompressed(fin)
	}
	_, err := w.c.writeFragment(w.first, fin, w.op, w.buf)
	w.first, w.buf = false, w.buf[:0]
	return err
}
