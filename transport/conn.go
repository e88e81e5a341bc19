package transport

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Role says which end of the connection a Conn is: clients mask what they send and expect
// unmasked frames; servers the reverse.
type Role uint8

// The two roles.
const (
	Server Role = iota
	Client
)

// String returns "server" or "client".
func (r Role) String() string {
	if r == Client {
		return "client"
	}
	return "server"
}

// Defaults for the zero values of Options.
const (
	DefaultMaxPayloadLen   = 65535
	DefaultMaxMessageLen   = 1 << 20
	DefaultReadBufferSize  = 4096
	DefaultWriteBufferSize = 4096
	DefaultWriteTimeout    = 10 * time.Second
	DefaultCloseTimeout    = 5 * time.Second
)

// Options configure a Conn. The zero value (or nil) gives the defaults; a negative limit or
// timeout means none. NewConn copies what it needs and never modifies Options.
type Options struct {
	// MaxPayloadLen caps the payload of one frame, received or sent (default 65535). A peer's
	// frame over it is refused from its header, before any payload is read, with close 1009;
	// a send over it is refused with ErrPayloadTooLarge (WriteMessage and NextWriter fragment
	// at it instead).
	MaxPayloadLen int64
	// MaxMessageLen caps a message, received or sent (default 1 MiB, or MaxPayloadLen if that
	// is larger; uncompressed size). A peer's message is checked frame by frame as fragments
	// arrive, at every read level, and refused with close 1009: RecvFrame too closes on the
	// fragment that takes a message past it (with the defaults, the 17th fragment of 65,535
	// bytes). A message sent over it is refused with ErrMessageTooLarge before anything of it
	// is sent (NextWriter says what becomes of a message that outgrows it). SetReadLimit
	// changes the receiving half during the connection.
	MaxMessageLen int64
	// ReadBufferSize and WriteBufferSize size the Conn's buffers (default 4096 each). The
	// buffers are borrowed from pools while data moves, and given back when the Conn waits,
	// so an idle connection holds none. A frame that fits the write buffer is copied into
	// the batch of frames that go out together (see FlushDelay; a batch holds at least
	// 16 KiB), and NextWriter sends a fragment per full write buffer.
	ReadBufferSize, WriteBufferSize int
	// WriteTimeout bounds a stall of the writes to the network (default 10 s): a write fails
	// once none of its bytes has gone out for WriteTimeout (it is noticed within twice
	// WriteTimeout), however long the whole write takes while the peer keeps reading. A write
	// that fails leaves the stream broken, so the Conn closes. Over a stream that cannot go on
	// after a timeout, such as a crypto/tls.Conn, the first timeout ends the write.
	WriteTimeout time.Duration
	// CloseTimeout bounds the wait for the peer's side of the close handshake (default 5 s).
	CloseTimeout time.Duration
	// FlushDelay bounds how long a frame may wait to go out with the frames written after
	// it (default 100 µs; negative: every frame is written at once). Frames are gathered only
	// while the reader has more of the peer's input buffered, as when a peer sends many
	// messages at once, and go out together, in one write, as soon as the reader has caught
	// up. Once the reader's caller takes FlushDelay or longer between two read calls (a
	// handler that works after its reply), the Conn writes at once until its turns are quick
	// again, since Go's timers may fire a millisecond late. A write error found when a batch
	// goes out is returned by the next write, and ends the Conn as any write error does.
	FlushDelay time.Duration
	// PingHandler is called for each ping met by ReadMessage and NextReader; nil answers with a
	// pong carrying the same payload. RecvFrame returns pings to its caller instead.
	PingHandler func(c *Conn, payload []byte) error
	// PongHandler is called for each pong met by ReadMessage and NextReader; nil ignores it.
	PongHandler func(c *Conn, payload []byte) error
	// Compression, when set, makes Dial offer and Upgrade accept permessage-deflate (RFC
	// 7692) and configures it; nil leaves compression off. A Conn compresses and inflates
	// only when its Setup says the handshake agreed on it.
	Compression *CompressionOptions
}

// Setup is what the handshake produced for one connection.
type Setup struct {
	// Subprotocol and Extensions are what the handshake agreed on, for the Conn to report.
	Subprotocol, Extensions string
	// Buffered holds bytes read past the end of the handshake; the Conn reads them first, so
	// a frame that arrived in the same packet as the handshake is not lost.
	Buffered []byte
	// Deflate is the permessage-deflate agreement, if any; Extensions reports it as text.
	Deflate DeflateParams
	// HTTP2 says the stream is an HTTP/2 stream (RFC 8441) rather than a connection of its
	// own, for Conn.HTTP2 to report.
	HTTP2 bool
	// Observer, when set, receives the Conn's measurements (messages, pings, the close).
	Observer Observer
}

// Conn is one WebSocket connection over a byte stream, in either role. It speaks RFC 6455:
// every received frame is checked, and a violation closes the connection with the matching
// close code.
//
// Concurrency: one goroutine at a time may read (RecvFrame, ReadMessage, NextReader and the
// reader it returns). Any number of goroutines may send at once (the Send methods,
// WriteMessage, NextWriter, Close): each frame goes out whole, never interleaved with another,
// and WriteMessage, SendText, SendBinary and NextWriter each hold the message stream until
// their message is complete. Control frames may go out between the fragments of a message.
type Conn struct {
	// An idle connection costs what this struct weighs: everything that is only needed while
	// bytes move (the reader's state, buffers, a pending batch) is borrowed from pools, and
	// what rarely differs from one connection to the next is shared (config) or kept apart
	// (extras).
	rwc   io.ReadWriteCloser
	cfg   *config
	ext   *extras              // nil when the handshake agreed on nothing
	aux   atomic.Pointer[rare] // nil until needed
	stats counters

	rmu   sync.Mutex
	rd    *reader            // guarded by rmu; nil while none is borrowed (reader.go)
	raw   syscall.RawConn    // the stream's descriptor, when it can be read directly
	rawFn func(uintptr) bool // the callback reading it (rawread_unix.go)
	seq   uint32             // counts messages, so that a stale NextReader reader can tell

	state   atomic.Uint32 // the flag bits below
	role    Role
	rdl     bool // a read deadline is set on the stream; guarded by rmu
	idle    bool // the reader waits between messages and may give its state back; rmu
	wOpen   bool // a fragmented message is in progress on the write side; wmu
	holding bool // WritePrepared has more messages for the batch; wmu

	wmu   sync.Mutex    // guards the fields below and every write to rwc
	msgMu sync.Mutex    // held by a message writer from its first frame to its last
	pend  *batch        // frames waiting to go out together (flush.go)
	wdl   time.Duration // the write deadline set on the stream, as a monotonic() time
}

// Bits of Conn.state, read without locks.
const (
	closeSent  = 1 << iota // this side's close frame has been sent
	peerClosed             // the peer's close frame has been read
	closed                 // rwc is closed
	moreIn                 // the reader has returned with more input buffered
	hasPend                // a batch waits for FlushDelay
	readEnded              // the read side has ended, and rare.rerr says how (endCall)
	slowTurns              // the reader's caller takes FlushDelay or more between calls (flush.go)
	writeCut               // a message write's context ended mid-write: no write may go on (write.go)
	overHTTP2              // the stream is an HTTP/2 stream (Setup.HTTP2)
)

func (c *Conn) is(bit uint32) bool { return c.state.Load()&bit != 0 }

func (c *Conn) set(bit uint32) { c.state.Or(bit) }

// setTo sets or clears bit, writing only when it changes.
func (c *Conn) setTo(bit uint32, on bool) {
	if c.is(bit) == on {
		return
	}
	if on {
		c.state.Or(bit)
	} else {
		c.state.And(^bit)
	}
}

// deadliner is the part of net.Conn that timeouts need.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// deadlines returns the stream when it has deadlines, else nil. It is looked up when needed
// rather than kept, to keep the Conn small: deadlines are set far less often than bytes move.
func (c *Conn) deadlines() deadliner {
	d, _ := c.rwc.(deadliner)
	return d
}

// clockStart anchors monotonic times kept as integers, which are smaller than a time.Time.
var clockStart = time.Now()

// monotonic returns the time since clockStart, read from the monotonic clock.
func monotonic() time.Duration { return time.Since(clockStart) }

// extras holds what the handshake agreed on, apart from the Conn, since most connections have
// none. It is set up by NewConn and the pointer never changes.
type extras struct {
	subprotocol, extensions string
	z                       *inflater // permessage-deflate's receive side, guarded by rmu
	zw                      *deflater // and its send side
	obs                     *observed // Setup.Observer's (observe.go)
}

// rare holds what few connections need, made on first use: a Done channel, the error that
// ended the write side, a read limit set after the handshake, and the Pings in flight.
type rare struct {
	done  atomic.Pointer[chan struct{}]
	werr  error        // guarded by Conn.wmu
	wrote int          // bytes the failed write had written (writeStream); Conn.wmu
	rerr  error        // set before the readEnded bit, read after it
	limit atomic.Int64 // SetReadLimit's message limit: 0 when unset, -1 for none

	pings atomic.Pointer[pinger] // Pings waiting for their pongs (ping.go)
}

// rare returns c's rare state, made if need be.
func (c *Conn) rare() *rare {
	if x := c.aux.Load(); x != nil {
		return x
	}
	x := &rare{}
	if c.aux.CompareAndSwap(nil, x) {
		return x
	}
	return c.aux.Load()
}

// writeErr returns the error that ended the write side, or nil; c.wmu is held.
func (c *Conn) writeErr() error {
	if x := c.aux.Load(); x != nil {
		return x.werr
	}
	return nil
}

// closedChan is the channel Done returns once the stream has closed before anyone asked.
var closedChan = func() *chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return &ch
}()

// NewConn returns a Conn over rwc in the given role. The handshake (package handshake) calls it;
// call it directly for a stream whose handshake was done elsewhere. Deadlines and timeouts work
// when rwc has SetReadDeadline and SetWriteDeadline, as a net.Conn does.
func NewConn(rwc io.ReadWriteCloser, role Role, setup Setup, opts *Options) *Conn {
	if opts == nil {
		opts = &Options{}
	}
	c := &Conn{rwc: rwc, role: role, cfg: configFor(opts)}
	if setup.Subprotocol != "" || setup.Extensions != "" || setup.Deflate.Enabled || setup.Observer != nil {
		c.ext = &extras{subprotocol: setup.Subprotocol, extensions: setup.Extensions}
		c.initDeflate(setup.Deflate, opts.Compression)
		if setup.Observer != nil {
			c.ext.obs = &observed{o: setup.Observer}
		}
	}
	if len(setup.Buffered) > 0 {
		r := c.lockRead()
		r.acquire(max(c.cfg.rsize, len(setup.Buffered)))
		r.end = copy(r.buf, setup.Buffered)
		c.rmu.Unlock()
	}
	c.raw, c.rawFn = rawReader(c)
	if setup.HTTP2 {
		c.set(overHTTP2) // a flag bit, so the common case pays nothing
	}
	return c
}

// HTTP2 reports whether c runs over an HTTP/2 stream (RFC 8441) rather than a connection of
// its own, as Setup said; for logs and metrics.
func (c *Conn) HTTP2() bool { return c.is(overHTTP2) }

// Role reports which end of the connection c is.
func (c *Conn) Role() Role { return c.role }

// Subprotocol returns the subprotocol the handshake agreed on, or "".
func (c *Conn) Subprotocol() string {
	if c.ext == nil {
		return ""
	}
	return c.ext.subprotocol
}

// Extensions returns the extensions the handshake agreed on, as the header value, or "".
func (c *Conn) Extensions() string {
	if c.ext == nil {
		return ""
	}
	return c.ext.extensions
}

// MaxPayloadLen returns the frame payload limit in force, or -1 for none.
func (c *Conn) MaxPayloadLen() int64 { return c.cfg.maxPayload }

// SetReadLimit sets the limit on the messages c receives, the receiving half of
// Options.MaxMessageLen, from the next message on; the message being read keeps the limit it
// began with. n counts as MaxMessageLen does (uncompressed bytes; a message over it is refused
// with close 1009), a negative n means none, and 0 goes back to the limit of the Options. What
// c sends stays under Options.MaxMessageLen. It may be called from any goroutine, during a
// read too.
func (c *Conn) SetReadLimit(n int64) {
	if n < 0 {
		n = -1
	}
	if x := c.aux.Load(); x == nil && n == 0 {
		return // nothing to undo
	}
	c.rare().limit.Store(n)
}

// readLimit returns the limit on the message that begins now.
func (c *Conn) readLimit() int64 {
	if x := c.aux.Load(); x != nil {
		if n := x.limit.Load(); n != 0 {
			return n
		}
	}
	return c.cfg.maxMessage
}

// LocalAddr returns the local network address when the stream is a net.Conn, else nil.
func (c *Conn) LocalAddr() net.Addr {
	if nc, ok := c.rwc.(net.Conn); ok {
		return nc.LocalAddr()
	}
	return nil
}

// RemoteAddr returns the peer's network address when the stream is a net.Conn, else nil.
func (c *Conn) RemoteAddr() net.Addr {
	if nc, ok := c.rwc.(net.Conn); ok {
		return nc.RemoteAddr()
	}
	return nil
}

// Done returns a channel that is closed once the underlying stream has been closed.
func (c *Conn) Done() <-chan struct{} {
	// Made on first use: most connections never need one.
	x := c.rare()
	if p := x.done.Load(); p != nil {
		return *p
	}
	if c.streamClosed() {
		x.done.CompareAndSwap(nil, closedChan)
		return *x.done.Load()
	}
	ch := make(chan struct{})
	if !x.done.CompareAndSwap(nil, &ch) {
		return *x.done.Load()
	}
	// The stream may have closed meanwhile, unseen by closeStream: whichever of the two
	// swaps the channel out closes it.
	if c.streamClosed() {
		if p := x.done.Swap(closedChan); p != closedChan {
			close(*p)
		}
	}
	return ch
}

// closeStream closes rwc once.
func (c *Conn) closeStream() error {
	if c.state.Or(closed)&closed != 0 {
		return ErrClosed
	}
	// A Done channel made before this point is closed here; one asked for later is closedChan.
	if x := c.aux.Load(); x != nil {
		if p := x.done.Swap(closedChan); p != nil && p != closedChan {
			close(*p)
		}
	}
	err := c.rwc.Close()
	c.flushObserved()
	c.observeClosed()
	return err
}

func (c *Conn) streamClosed() bool { return c.is(closed) }
