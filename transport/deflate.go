package transport

import (
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// The send side of permessage-deflate: messages go through the Conn's deflate.Compressor into
// a sink that cuts its output into frames.

// zsink receives the compressor's output and sends it in frames of at most size bytes, the
// last one when the message is finished.
type zsink struct {
	c     *Conn // nil between messages
	op    frame.Opcode
	first bool
	size  int
	in    int64 // bytes of the message given to the compressor
	buf   *[]byte
	n     int // bytes written to the stream
	err   error
}

func (s *zsink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	b := append(*s.buf, p...)
	for len(b) > s.size {
		if err := s.emit(b[:s.size], false); err != nil {
			*s.buf = b[:0]
			return 0, err
		}
		b = b[:copy(b, b[s.size:])]
	}
	*s.buf = b
	return len(p), nil
}

// emit writes one frame of the message: RSV1 on the first only (RFC 7692 section 6).
func (s *zsink) emit(p []byte, fin bool) error {
	c := s.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	op := s.op
	if !s.first {
		op = frame.OpContinuation
	}
	if err := c.checkOrder(!s.first); err != nil {
		s.err = err
		return err
	}
	if err := c.writable(); err != nil {
		s.err = err
		return err
	}
	if fin {
		c.sendingCompressed(s.in)
	}
	n, err := c.writeWire(c.header(fin, s.first, op, len(p)), p)
	n, err = c.wrote(fin, op, len(p), n, err)
	s.n += n
	s.first = false
	s.err = err
	return err
}

// zBeginWrite prepares to send a compressed message; c.msgMu is held. It refuses, before the
// compressor sees a byte, a message that could not start.
func (c *Conn) zBeginWrite(op frame.Opcode) error {
	c.wmu.Lock()
	err := c.checkOrder(false)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	z := c.ext.zw
	s := &z.sink
	s.c, s.op, s.first, s.n, s.in, s.err = c, op, true, 0, 0, nil
	s.size = 1 << 20
	if c.cfg.maxPayload >= 0 {
		s.size = int(c.cfg.maxPayload)
	}
	s.buf = pool.Get(min(s.size, 1<<16))
	*s.buf = (*s.buf)[:0]
	z.z.Start(s)
	return nil
}

// zFinishWrite ends the message (err: it failed part way) and returns the bytes written for
// the whole message.
func (c *Conn) zFinishWrite(err error) (int, error) {
	z := c.ext.zw
	s := &z.sink
	if err == nil {
		err = z.z.Finish()
	}
	if err == nil {
		err = s.emit(*s.buf, true)
	}
	if err != nil {
		z.z.Abort() // the peer may lack part of the message: the next refers to none before it
	}
	pool.Put(s.buf)
	s.buf, s.c = nil, nil
	return s.n, err
}

// writeCompressed sends p as one compressed message; c.msgMu is held.
func (c *Conn) writeCompressed(op frame.Opcode, p []byte) (int, error) {
	if err := c.zBeginWrite(op); err != nil {
		return 0, err
	}
	c.ext.zw.sink.in = int64(len(p))
	_, err := c.ext.zw.z.Write(p)
	return c.zFinishWrite(err)
}

// flushCompressed is messageWriter.flush for a compressed message.
func (w *messageWriter) flushCompressed(fin bool) error {
	c := w.c
	if w.zerr != nil {
		return w.zerr
	}
	if w.first {
		if err := c.zBeginWrite(w.op); err != nil {
			return err
		}
	}
	c.ext.zw.sink.in += int64(len(w.buf))
	_, err := c.ext.zw.z.Write(w.buf)
	w.first, w.buf = false, w.buf[:0]
	if err != nil || fin {
		_, err = c.zFinishWrite(err)
		w.zerr = err
	}
	return err
}
