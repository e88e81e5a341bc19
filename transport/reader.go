package transport

import (
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/pool"
)

// The reader's lifecycle, in one place. A Conn borrows its reader state (a reader) and its
// read buffer while it reads, and gives them back when it waits, so that an idle connection
// holds neither:
//
//   - Borrow: a read call locks rmu with lockRead (or tryLockRead), which takes a reader from
//     readerPool if the Conn holds none (holdReader); the buffer is borrowed by acquire when
//     bytes are about to be read (fill, and NewConn for the handshake's leftovers).
//   - Hold: everything in a reader survives a timeout, so while a message or frame is
//     unfinished (between reports false) the Conn keeps its reader and buffer across calls.
//   - Give back: the buffer goes back (release) once it holds no unread byte; the whole
//     reader goes back (putReader) only in waitIdle, when it stands between messages with
//     nothing buffered, and a fresh one is taken before waitIdle returns: after any call that
//     may wait, callers reload c.rd rather than keep a pointer to the old reader. When the read
//     side ends, unlockRead gives back the buffer and closes the inflater.

// reader is the receive state of a Conn, guarded by Conn.rmu. Every field survives a timeout,
// so a call that stopped anywhere in a frame can be resumed by the next one. It is borrowed
// from a pool: a Conn waiting for its peer between messages gives it back (waitIdle).
type reader struct {
	bufp     *[]byte // the pooled buffer, nil while none is held
	buf      []byte  // *bufp, or nil: buf[pos:end] is unread input
	pos, end int
	rawErr   error // what the raw read callback met (rawread_unix.go)

	hdr       frame.Header // header of the frame being read
	inFrame   bool         // hdr is decoded, its payload not yet fully read
	remaining int64        // payload bytes of hdr still to read
	maskPos   int
	got       int    // payload bytes already in the spill's fbuf (RecvFrame)
	sp        *spill // made on first use
	one       [1]byte

	inMsg  bool         // a data message has started and not ended
	frames bool         // RecvFrame has returned part of it, or stopped inside it
	msgOp  frame.Opcode // its opcode
	msgLen int64
	limit  int64 // its size limit (Conn.readLimit), -1 for none
	utf8   frame.UTF8

	err     error         // sticky: the connection cannot be read any more
	bounded bool          // the current call has a deadline (endLater)
	tail    func()        // the end of the read side, left to finish after the call (endLater)
	turnAt  time.Duration // when the last call returned, while turns are timed (flush.go)
	seen    uint8         // read calls that found a batch waiting (flush.go)

	// permessage-deflate (inflate.go)
	zMsg     bool // the current message is compressed: RSV1 on its first frame
	zPending bool // the current frame of that message is not fed to the inflater yet
	zFed     bool // the inflater has been fed some of that message
}

// spill is reader state that few connections need.
type spill struct {
	fbuf    []byte // payload of frames too large for the read buffer, reused
	partial []byte // message bytes read by a ReadMessage that timed out
	pOp     frame.Opcode
}

// keepPartial sets the partial message to p, of opcode op (0: none), dropping a large buffer
// rather than keeping it for the life of the Conn.
func (sp *spill) keepPartial(p []byte, op frame.Opcode) {
	if op == 0 && cap(p) > maxKeptSpill {
		p = nil
	}
	sp.partial, sp.pOp = p, op
}

// spill returns r's spill state, made on first use.
func (r *reader) spill() *spill {
	if r.sp == nil {
		r.sp = &spill{}
	}
	return r.sp
}

var readerPool pool.Of[reader]

// maxKeptSpill bounds the spill buffers a pooled reader keeps for its next Conn.
const maxKeptSpill = 1 << 16

// putReader gives r back; nothing may use it afterwards. A small spill buffer stays with it.
func putReader(r *reader) {
	r.release()
	sp := r.sp
	*r = reader{}
	if sp != nil && cap(sp.fbuf) <= maxKeptSpill && cap(sp.partial) <= maxKeptSpill {
		sp.partial, sp.pOp = sp.partial[:0], 0
		r.sp = sp
	}
	readerPool.Put(r)
}

// between reports whether r stands between messages with nothing buffered and nothing to
// resume, so that a fresh reader would carry on exactly as it would.
func (r *reader) between() bool {
	return r.pos == r.end && !r.inFrame && !r.inMsg && !r.zMsg && r.err == nil && (r.sp == nil || r.sp.pOp == 0)
}

// lockRead locks the read side for a read call and returns its state.
func (c *Conn) lockRead() *reader {
	c.rmu.Lock()
	r := c.holdReader()
	if c.ext != nil {
		c.zReadCall(r)
	}
	return r
}

// unlockRead releases rmu, and the inflater and the read buffer once the read side has
// ended. It tells writers whether more input waits (flush.go).
func (c *Conn) unlockRead() {
	r := c.rd
	more := r.err == nil && r.end > r.pos
	c.setTo(moreIn, more)
	if r.err != nil {
		if z := c.inflater(); z != nil {
			z.close()
		}
		r.release()
	}
	ob := c.observer()
	if ob != nil && !more {
		ob.o.FlushReceived() // the next read would wait for the peer
	}
	c.rmu.Unlock()
	if ob != nil && more && c.streamClosed() && c.rmu.TryLock() {
		// The stream closed with input left, which may never be read: closeStream's own
		// flush may have found this call holding the lock.
		ob.o.FlushReceived()
		c.rmu.Unlock()
	}
}

// tryLockRead is lockRead unless another goroutine holds the read side.
func (c *Conn) tryLockRead() (*reader, bool) {
	if !c.rmu.TryLock() {
		return nil, false
	}
	return c.holdReader(), true
}

// holdReader returns c's reader state, borrowed if c holds none; c.rmu is held.
func (c *Conn) holdReader() *reader {
	if c.rd == nil {
		c.rd = readerPool.Get() // holds no buffer (putReader)
	}
	return c.rd
}

// acquire borrows a read buffer of size bytes; the reader holds none.
func (r *reader) acquire(size int) {
	r.bufp = pool.Get(size)
	r.buf = *r.bufp
}

// release gives the read buffer back, if one is held; it must hold no unread input.
func (r *reader) release() {
	if r.bufp != nil {
		pool.Put(r.bufp)
		r.bufp, r.buf = nil, nil
	}
}
