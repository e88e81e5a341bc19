package transport

import (
	"compress/flate"
	"errors"
	"io"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ecows/ecows/frame"
)

// This file is permessage-deflate (RFC 7692): the options, the agreement the handshake hands
// to NewConn, the inflater behind every read call and the compressor behind message writes.

// Defaults for the zero values of CompressionOptions.
const (
	// DefaultCompressionLevel is flate.BestSpeed: for the short messages WebSockets mostly
	// carry it compresses nearly as well as the higher levels at a fraction of their cost, and
	// its compressors reset cheaply, which matters when each message has one from a pool.
	DefaultCompressionLevel = flate.BestSpeed
	// DefaultCompressionThreshold is the size under which messages go uncompressed when this
	// side keeps no context between messages: a lone short message barely shrinks.
	DefaultCompressionThreshold = 512
	// DefaultCompressionThresholdTakeover is that size when this side keeps its context:
	// short messages then shrink well, by referring to earlier ones.
	DefaultCompressionThresholdTakeover = 128
)

// CompressionOptions turn on permessage-deflate (RFC 7692) in Options.Compression: Dial offers
// it and Upgrade accepts a client's offer; the Conn then compresses the messages it sends and
// inflates the compressed messages it receives. The zero value is a safe default: level
// BestSpeed, no context kept between messages, so that an idle connection holds no
// compression state at all.
type CompressionOptions struct {
	// Level is the compress/flate level for sending, from flate.HuffmanOnly (-2) through
	// flate.BestCompression (9); 0, and anything out of range, means DefaultCompressionLevel.
	// (flate.NoCompression is not offered: leave compression off instead.)
	Level int

	// Threshold is the message size in bytes under which messages are sent uncompressed; 0
	// means DefaultCompressionThreshold, or DefaultCompressionThresholdTakeover when this side
	// keeps its context, and a negative value compresses every message.
	Threshold int

	// ContextTakeover keeps the LZ77 window from one message to the next in both directions
	// (RFC 7692 section 7.1.1), which compresses repetitive messages far better at a fixed
	// cost per connection, held as long as it lives: a flate.Writer of about 1.2 MiB at level
	// 1 (0.8 MiB at other levels) once it has sent a compressed message, and a 45 KiB
	// decompressor running in a parked goroutine once it has received one (about 1.25 MiB
	// per connection measured, BenchmarkDeflateIdleConn). Without it, the server's answer
	// carries server_no_context_takeover and client_no_context_takeover (Dial offers both),
	// each message is compressed and inflated on its own, and compressors and decompressors
	// come from pools while a message is in flight: an idle connection holds none.
	ContextTakeover bool
}

// DeflateParams is the permessage-deflate agreement of one connection, seen from its own end:
// the handshake fills it in from the negotiated parameters (RFC 7692 section 7.1) and NewConn
// acts on it. The zero value means no compression.
type DeflateParams struct {
	// Enabled says that permessage-deflate was negotiated.
	Enabled bool
	// NoContextTakeover makes this end compress each message with an empty window: the peer
	// asked for it (<role>_no_context_takeover for this end's role), or this end offered it.
	NoContextTakeover bool
	// PeerNoContextTakeover says that the peer compresses each message with an empty window,
	// so that this end may inflate each one on its own.
	PeerNoContextTakeover bool
	// MaxWindowBits is the largest LZ77 window, as a power of two from 8 to 15, that this end
	// may compress with; 0 means 15. compress/flate always uses a 32 KiB (2^15) window, so
	// below 15 the Conn compresses each message on its own, and messages longer than the
	// window with Huffman coding only: no back-reference can then reach further than allowed.
	MaxWindowBits int
}

// Errors of the compressed read path.
var (
	errRSV1    = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "RSV1 set on a control frame or a continuation frame"}
	errDeflate = &frame.ProtocolError{Code: frame.CloseInvalidPayload, Reason: "invalid compressed data"}
)

// The inflater's internal signals.
var (
	errNeedInput = errors.New("inflater needs the next frame")
	errStopped   = errors.New("inflater stopped")
)

// deflateTail is what RFC 7692 section 7.2.2 appends to a compressed message before inflating
// it: the end of the empty stored block that closed the sender's DEFLATE data, which section
// 7.2.1 removed from the wire.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflateEnd is deflateTail followed by an empty stored block with BFINAL set, so that a
// decompressor used for one message only reaches io.EOF exactly at its end.
var deflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// initDeflate sets up compression as the handshake agreed; NewConn calls it.
func (c *Conn) initDeflate(p DeflateParams, o *CompressionOptions) {
	if !p.Enabled {
		return
	}
	if o == nil {
		o = &CompressionOptions{}
	}
	z := &deflater{level: o.Level, threshold: o.Threshold}
	if z.level < flate.HuffmanOnly || z.level > flate.BestCompression || z.level == flate.NoCompression {
		z.level = DefaultCompressionLevel
	}
	if p.MaxWindowBits > 0 && p.MaxWindowBits < 15 {
		z.window = 1 << max(p.MaxWindowBits, 8)
	}
	z.takeover = !p.NoContextTakeover && z.window == 0
	if z.threshold == 0 {
		z.threshold = DefaultCompressionThreshold
		if z.takeover {
			z.threshold = DefaultCompressionThresholdTakeover
		}
	}
	c.ext.zw = z
	c.ext.z = &inflater{reset: p.PeerNoContextTakeover}
	// A Conn dropped without Close in the middle of a compressed message would leave its
	// inflater's coroutine waiting forever; this ends it once the Conn is garbage.
	runtime.AddCleanup(c, (*inflater).close, c.ext.z)
}

// inflater returns the receive side of permessage-deflate, nil when it was not negotiated.
func (c *Conn) inflater() *inflater {
	if c.ext == nil {
		return nil
	}
	return c.ext.z
}

// deflater returns the send side of permessage-deflate, nil when it was not negotiated.
func (c *Conn) deflater() *deflater {
	if c.ext == nil {
		return nil
	}
	return c.ext.zw
}

// SetCompression turns compression of the messages this side sends on (the default once
// permessage-deflate is negotiated) or off. It applies to messages started after the call
// by WriteMessage, NextWriter, SendText and SendBinary; SendFrame and WritePrepared never
// compress. Without a negotiated compression it does nothing. An uncompressed message is
// always allowed (RFC 7692 section 6), and the peer needs no notice.
func (c *Conn) SetCompression(on bool) {
	if z := c.deflater(); z != nil {
		z.off.Store(!on)
	}
}

// The receive side.
//
// A compressed message is inflated as its bytes arrive, from the read buffer in place: the
// decompressor is fed what the buffer holds of the current frame, and the buffer is refilled
// from the stream only once it has consumed all of it. Memory therefore follows the bytes
// received, never the length a header declares, which is only checked against the limits.
// A read timeout can only strike while bytes are being read and never inside the
// decompressor, whose state could not survive an error. But a DEFLATE block may span any
// number of reads and frames, and compress/flate pulls its input and cannot pause: when the
// stream has to wait for more bytes, the decompressor therefore runs in a coroutine
// (iter.Pull) that is suspended while they are read. A message inflated on its own whose only
// frame fits the read buffer, the common case, is read whole first and needs none. With
// context takeover the stream goes on from message to message, so its coroutine lives as
// long as the connection.

// inflater inflates the compressed messages of one Conn; it is guarded by Conn.rmu. It holds
// no reference to the Conn, so that an abandoned Conn can be collected and its coroutine
// stopped (see initDeflate).
type inflater struct {
	reset bool // the peer keeps no context: each message starts afresh, with a pooled decompressor

	st    *inflateState // the decompressor, while one is held
	in    []byte        // input fed and not yet consumed
	tail  []byte        // input to follow in: deflateTail or deflateEnd once the final frame is fed
	final bool          // the message's last input has been fed
	done  bool          // the message is fully inflated (direct mode), or had no byte to inflate

	// The coroutine, when one runs.
	next    func() (struct{}, bool)
	stop    func()
	yield   func(struct{}) bool
	starved bool   // the coroutine waits for input
	ended   bool   // the stream reached a final block: the rest of the message carries nothing
	out     []byte // inflated by the coroutine, not yet handed out
	err     error  // the decompressor failed

	closed bool

	// The Conn's account of the current compressed message.
	msgLen  int64 // inflated bytes so far
	msgWire int64 // compressed bytes so far

	// RecvFrame's inflated payloads: a pooled buffer, reused for the frames of a message and
	// given back at the first read call after it (zReadCall), and the length already inflated
	// into it by a call that timed out inside the frame.
	outp   *[]byte
	outLen int
}

// inflateState is a decompressor with the buffer its coroutine inflates into.
type inflateState struct {
	fr   io.ReadCloser // also a flate.Resetter
	obuf [4096]byte
}

var inflatePool sync.Pool

func (z *inflater) acquire() {
	if z.st == nil {
		if st, ok := inflatePool.Get().(*inflateState); ok {
			z.st = st
			z.st.fr.(flate.Resetter).Reset(z, nil)
		} else {
			z.st = &inflateState{fr: flate.NewReader(z)}
		}
	}
}

func (z *inflater) release() {
	if z.next != nil {
		z.stop()
		z.next, z.stop = nil, nil
	}
	if z.st != nil {
		inflatePool.Put(z.st)
		z.st = nil
	}
	z.in, z.tail, z.out, z.err, z.ended, z.starved = nil, nil, nil, nil, false, false
}

// begin starts a compressed message. Without context takeover the decompressor is taken from
// its pool when the first bytes come (zLoad), since only then is it known whether the message
// can be inflated without a coroutine.
func (z *inflater) begin() {
	z.in, z.tail, z.final, z.done, z.outLen = nil, nil, false, false, 0
	if !z.reset {
		switch {
		case z.next == nil:
			z.acquire()
			z.start()
		case z.ended:
			z.next() // the coroutine starts the new stream, then waits for its input
		}
	}
}

func (z *inflater) start() {
	z.next, z.stop = iter.Pull(z.run)
}

// run is the coroutine: it inflates into obuf and yields each chunk, and the input source
// yields when it runs dry (see more).
func (z *inflater) run(yield func(struct{}) bool) {
	z.yield = yield
	defer func() { z.yield = nil }()
	fr := z.st.fr
	for {
		n, err := fr.Read(z.st.obuf[:])
		z.out = z.st.obuf[:n]
		switch {
		case err == io.EOF:
			// A final block: deflateEnd's, or the peer's own (RFC 7692 section 7.2.3.4), after
			// which the rest of the message carries nothing. With context takeover the next
			// message starts a new stream with an empty window, as Chromium does: a sender
			// that ended its stream has no history to refer to.
			z.ended = true
		case err != nil:
			z.err = err
		}
		if !yield(struct{}{}) || z.err != nil {
			return
		}
		if z.ended {
			fr.(flate.Resetter).Reset(z, nil)
			z.ended = false
		}
	}
}

// feed hands z the next compressed bytes of the message; final marks its last.
// empty says that the whole message carried no compressed byte: it then inflates to nothing
// without touching the decompressor (DEFLATE data is never empty, but zlib-based receivers
// accept an empty payload as an empty message, and so do we).
//
// Without context takeover the message ends with deflateEnd, so that data which does not end
// where the message does is caught: the decompressor must reach the final block. With it, the
// stream must go on, so the message ends with deflateTail, after which a well-formed stream
// waits at a block boundary, all its output flushed by the empty stored block; a malformed
// one that stops inside a block is not detected there, and its decompressor holds what it
// decoded until the next message flushes it, counted against that message's limit, as
// zlib-based receivers do.
func (z *inflater) feed(p []byte, final, empty bool) {
	z.in, z.final = p, final
	switch {
	case !final:
	case empty:
		z.done = true
	case z.reset:
		z.tail = deflateEnd
	default:
		z.tail = deflateTail
	}
}

// ReadByte and Read are the decompressor's input: the fed payload, then the tail. flate uses
// them directly since they make z an io.ByteReader.
func (z *inflater) ReadByte() (byte, error) {
	for len(z.in) == 0 {
		if err := z.more(); err != nil {
			return 0, err
		}
	}
	b := z.in[0]
	z.in = z.in[1:]
	return b, nil
}

func (z *inflater) Read(p []byte) (int, error) {
	for len(z.in) == 0 {
		if err := z.more(); err != nil {
			return 0, err
		}
	}
	n := copy(p, z.in)
	z.in = z.in[n:]
	return n, nil
}

// more refills in: from the tail, or in the coroutine by waiting for the next frame. In direct
// mode the input is complete, and running out of it means the data is truncated.
func (z *inflater) more() error {
	if len(z.tail) > 0 {
		z.in, z.tail = z.tail, nil
		return nil
	}
	if z.yield == nil {
		return io.EOF
	}
	z.starved = true
	ok := z.yield(struct{}{})
	z.starved = false
	if !ok {
		return errStopped
	}
	return nil
}

// read inflates into p (len(p) > 0). It returns errNeedInput when nothing more can come
// before the next frame is fed, io.EOF at the end of the message, and another error for
// invalid data.
func (z *inflater) read(p []byte) (int, error) {
	if z.closed {
		return 0, ErrClosed
	}
	if z.done {
		return 0, io.EOF
	}
	if z.next == nil {
		n, err := z.st.fr.Read(p)
		if err == io.EOF {
			z.done = true
			err = nil
			if n == 0 {
				err = io.EOF
			}
		}
		return n, err
	}
	for {
		switch {
		case len(z.out) > 0:
			n := copy(p, z.out)
			z.out = z.out[n:]
			return n, nil
		case z.err != nil:
			return 0, z.err
		case z.ended:
			z.in, z.tail = nil, nil
			if z.final {
				return 0, io.EOF
			}
			return 0, errNeedInput
		case z.starved && len(z.in) == 0 && len(z.tail) == 0:
			switch {
			case !z.final:
				return 0, errNeedInput
			case z.reset:
				return 0, errDeflate // the stream did not end with the message
			}
			return 0, io.EOF
		}
		if _, ok := z.next(); !ok {
			return 0, errDeflate
		}
	}
}

// hungry reports whether z can give nothing more before the next frame is fed.
func (z *inflater) hungry() bool {
	return z.next != nil && !z.final && len(z.out) == 0 && len(z.in) == 0 && len(z.tail) == 0 &&
		z.err == nil && (z.starved || z.ended)
}

// endMessage is called once a message is fully inflated.
func (z *inflater) endMessage() {
	z.in, z.tail = nil, nil
	if z.reset {
		z.release()
	}
}

// close releases everything z holds; reads fail with ErrClosed from then on. RecvFrame's last
// payload may still be in use, so its buffer is left to the garbage collector, not pooled.
func (z *inflater) close() {
	if !z.closed {
		z.closed = true
		z.release()
		z.outp, z.outLen = nil, 0
	}
}

// zReadCall is called as each read call starts: the payload RecvFrame returned before is no
// longer valid (see RecvFrame), so once its message has ended its buffer goes back to the
// pool, and a Conn waiting for its next message holds none.
func (c *Conn) zReadCall(r *reader) {
	if z := c.inflater(); z != nil && z.outp != nil && !r.zMsg {
		putBuf(z.outp)
		z.outp = nil
	}
}

// releaseInflater ends the inflater when the connection closes without a reader to do it.
func (c *Conn) releaseInflater() {
	if z := c.inflater(); z != nil && c.rmu.TryLock() {
		z.close()
		c.rmu.Unlock()
	}
}

// unlockRead releases rmu, and the inflater and the read buffer once the read side has
// ended. It tells writers whether more input waits (flush.go).
func (c *Conn) unlockRead() {
	r := c.rd
	c.setTo(moreIn, r.err == nil && r.end > r.pos)
	if r.err != nil {
		if z := c.inflater(); z != nil {
			z.close()
		}
		r.release()
	}
	c.rmu.Unlock()
}

// zBegin starts the compressed-message state for the first frame h of a data message.
func (c *Conn) zBegin(h frame.Header) {
	r := c.rd
	r.zMsg = h.Rsv1
	if !r.zMsg {
		return
	}
	c.ext.z.msgLen, c.ext.z.msgWire = 0, 0
	c.ext.z.begin()
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
// A timeout leaves the frame where it was, to be resumed by the next call.
func (c *Conn) zLoad() error {
	r, z := c.rd, c.ext.z
	switch {
	case z.st == nil:
		// The first bytes of a message inflated on its own. When its only frame fits the read
		// buffer, it is read whole and inflated without a coroutine.
		direct := r.hdr.Fin && r.remaining <= int64(c.cfg.rsize)
		if direct {
			if err := c.fill(int(r.remaining)); err != nil {
				return err
			}
		} else if err := c.fill(int(min(r.remaining, 1))); err != nil {
			return err
		}
		z.acquire()
		if !direct {
			z.start()
		}
	case r.remaining > 0:
		if err := c.fill(1); err != nil {
			return err
		}
	}
	payload, err := c.takeBuffered(int(min(r.remaining, int64(r.end-r.pos))))
	if err != nil {
		return err
	}
	r.zPending = r.remaining > 0
	z.msgWire += int64(len(payload))
	final := r.hdr.Fin && !r.zPending
	z.feed(payload, final, final && z.msgWire == 0)
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
	c.ext.z.endMessage()
	if r.msgOp == frame.OpText && r.utf8.Finish() != nil {
		return c.fail(frame.ErrInvalidUTF8)
	}
	return io.EOF
}

// zFailed maps an error of the inflater to the Conn's answer.
func (c *Conn) zFailed(err error) error {
	if err == ErrClosed {
		return err
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

// zStep is how much room to add to a buffer of n inflated bytes: doubling, from 4 KiB, by at
// most 1 MiB at a time, and never further than MaxMessageLen allows.
func (c *Conn) zStep(n int) int {
	step := int64(min(max(n, 4096), 1<<20))
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
		if r.zPending && len(z.in) == 0 {
			if err := c.zLoad(); err != nil {
				return 0, err
			}
		}
		n, err := z.read(c.zRoom(p))
		if n > 0 {
			return n, c.zInflated(p[:n])
		}
		switch err {
		case io.EOF:
			return 0, c.zEnd()
		case errNeedInput:
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
		if r.zPending && len(z.in) == 0 {
			if err := c.zLoad(); err != nil {
				z.outLen = len(out)
				return frame.Frame{}, err
			}
		}
		if len(out) == cap(out) {
			out = c.zGrowOut(out)
		}
		n, err := z.read(c.zRoom(out[len(out):cap(out)]))
		if n > 0 {
			if err := c.zInflated(out[len(out) : len(out)+n]); err != nil {
				return frame.Frame{}, err
			}
			out = out[:len(out)+n]
			continue
		}
		switch {
		case err == errNeedInput && r.zPending:
			continue // more of this frame
		case err == io.EOF:
			err = c.zEnd()
		}
		if err == errNeedInput || err == io.EOF {
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
	b := getBuf(len(out) + c.zStep(len(out)))
	copy(*b, out)
	if z.outp != nil {
		putBuf(z.outp)
	}
	z.outp = b
	return (*b)[:len(out)]
}

// The send side.

// deflater compresses the messages a Conn sends. Its fields are guarded by Conn.msgMu, except
// off.
type deflater struct {
	level     int
	threshold int
	window    int  // under a window limit: the longest message that may use LZ77; 0 for none
	takeover  bool // one compressor for the connection's life
	off       atomic.Bool

	fw    *flate.Writer // always with takeover; while a message is written otherwise
	lvl   int           // fw's level, for its pool
	sink  zsink
	stale bool // takeover: a message failed part way, so the window must be emptied
}

// deflatePools hold compressors by level, from flate.HuffmanOnly (-2) to flate.BestCompression.
var deflatePools [flate.BestCompression + 3]sync.Pool

// zsinkPool holds the sinks' frame buffers.
var zsinkPool sync.Pool

// zsink receives the compressor's output and sends it in frames of at most size bytes. It
// holds back the last four bytes: at the end of a message they are the 0x00 0x00 0xff 0xff
// that RFC 7692 section 7.2.1 removes.
type zsink struct {
	c     *Conn // nil between messages, so that a pooled compressor pointing here holds no Conn
	op    frame.Opcode
	first bool
	size  int
	buf   *[]byte
	n     int // bytes written to the stream
	err   error
}

func (s *zsink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	b := append(*s.buf, p...)
	for len(b) > s.size+len(deflateTail) {
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
	n, err := c.writeWire(c.header(fin, s.first, op, len(p)), p)
	n, err = c.wrote(fin, op, n, err)
	s.n += n
	s.first = false
	s.err = err
	return err
}

// compressing reports whether a message of n bytes (-1: not known yet) goes out compressed.
func (c *Conn) compressing(n int) bool {
	z := c.deflater()
	return z != nil && !z.off.Load() && (n < 0 || n >= z.threshold)
}

// zBeginWrite prepares to send a compressed message of n bytes (-1: not known yet); c.msgMu is
// held. It refuses, before the compressor sees a byte, a message that could not start.
func (c *Conn) zBeginWrite(op frame.Opcode, n int) error {
	c.wmu.Lock()
	err := c.checkOrder(false)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	z := c.ext.zw
	s := &z.sink
	s.c, s.op, s.first, s.n, s.err = c, op, true, 0, nil
	s.size = 1 << 20
	if c.cfg.maxPayload >= 0 {
		s.size = int(c.cfg.maxPayload)
	}
	if b, ok := zsinkPool.Get().(*[]byte); ok {
		s.buf = b
	} else {
		b := make([]byte, 0, min(s.size+512, 1<<16))
		s.buf = &b
	}
	switch {
	case z.takeover && z.fw == nil:
		z.fw, _ = flate.NewWriter(s, z.level)
	case z.takeover:
		if z.stale {
			z.fw.Reset(s)
			z.stale = false
		}
	default:
		z.lvl = z.level
		if z.window > 0 && (n < 0 || n > z.window) {
			// Only a message no longer than the window can refer back no further than it
			// allows; longer ones get no back-references at all.
			z.lvl = flate.HuffmanOnly
		}
		if fw, ok := deflatePools[z.lvl+2].Get().(*flate.Writer); ok {
			fw.Reset(s)
			z.fw = fw
		} else {
			z.fw, _ = flate.NewWriter(s, z.lvl)
		}
	}
	return nil
}

// zFinishWrite ends the message with the compressor's sync flush, whose last four bytes it
// drops (RFC 7692 section 7.2.1), and returns the bytes written for the whole message.
func (c *Conn) zFinishWrite(err error) (int, error) {
	z := c.ext.zw
	s := &z.sink
	if err == nil {
		err = z.fw.Flush()
	}
	if err == nil {
		b := *s.buf
		// Flush always ends with an empty stored block, byte-aligned: 0x00 0x00 0xff 0xff.
		err = s.emit(b[:len(b)-len(deflateTail)], true)
	}
	*s.buf = (*s.buf)[:0]
	zsinkPool.Put(s.buf)
	s.buf, s.c = nil, nil
	if z.takeover {
		// A message cut short leaves the peer without part of our history. A compressor
		// that starts over refers to nothing the peer lacks: a sender may always do that.
		z.stale = err != nil
	} else {
		deflatePools[z.lvl+2].Put(z.fw)
		z.fw = nil
	}
	return s.n, err
}

// writeCompressed sends p as one compressed message; c.msgMu is held.
func (c *Conn) writeCompressed(op frame.Opcode, p []byte) (int, error) {
	if err := c.zBeginWrite(op, len(p)); err != nil {
		return 0, err
	}
	_, err := c.ext.zw.fw.Write(p)
	return c.zFinishWrite(err)
}

// flushCompressed is messageWriter.flush for a compressed message.
func (w *messageWriter) flushCompressed(fin bool) error {
	c := w.c
	if w.zerr != nil {
		return w.zerr
	}
	if w.first {
		n := len(w.buf)
		if !fin {
			n = -1
		}
		if err := c.zBeginWrite(w.op, n); err != nil {
			return err
		}
	}
	_, err := c.ext.zw.fw.Write(w.buf)
	w.first, w.buf = false, w.buf[:0]
	if err != nil || fin {
		_, err = c.zFinishWrite(err)
		w.zerr = err
	}
	return err
}
