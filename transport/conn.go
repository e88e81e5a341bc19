package transport

import (
	crand "crypto/rand"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
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
	// frame over it is refused from its header, before any payload is read, with close 1009.
	MaxPayloadLen int64
	// MaxMessageLen caps a reassembled message received (default 1 MiB, or MaxPayloadLen if
	// that is larger), checked frame by frame as fragments arrive.
	MaxMessageLen int64
	// ReadBufferSize and WriteBufferSize size the Conn's buffers (default 4096 each). The
	// buffers are borrowed from pools while data moves, and given back when the Conn waits,
	// so an idle connection holds none.
	ReadBufferSize, WriteBufferSize int
	// WriteTimeout bounds each write to the network (default 10 s). A write that times out
	// leaves the stream broken, so the Conn closes.
	WriteTimeout time.Duration
	// CloseTimeout bounds the wait for the peer's side of the close handshake (default 5 s).
	CloseTimeout time.Duration
	// FlushDelay bounds how long a frame may wait to go out with the frames written after
	// it (default 100 µs; negative: every frame is written at once). Frames are gathered only
	// while the reader has more of the peer's input buffered, as when a peer sends many
	// messages at once, and go out together, in one write, as soon as the reader has caught
	// up. A write error found when a batch goes out is returned by the next write, and ends
	// the Conn as any write error does.
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
	rwc          io.ReadWriteCloser
	role         Role
	maxPayload   int64
	maxMessage   int64
	writeTimeout time.Duration
	closeTimeout time.Duration
	flushDelay   time.Duration
	onPing       func(*Conn, []byte) error
	onPong       func(*Conn, []byte) error
	agreed       *agreed // what the handshake agreed on; nil when nothing

	rmu   sync.Mutex
	rd    reader
	rsize int // read buffer size

	wmu     sync.Mutex // guards the fields below and every write to rwc
	wsize   int        // write buffer size
	wv      *vecWriter // for payloads larger than the write buffer, made on first use
	pend    *[]byte    // the pending batch (flush.go), borrowed while frames wait
	pendN   int
	flushT  *time.Timer   // sends a batch FlushDelay after it started, made on first use
	armed   bool          // flushT is set for the pending batch
	holding bool          // WritePrepared has more messages for the batch
	wdl     time.Duration // the write deadline set on the stream, as a monotonic() time
	wOpen   bool          // a fragmented message is in progress on the write side
	werr    error
	rng     *rand.ChaCha8
	msgMu   sync.Mutex     // held by a message writer from its first frame to its last
	mw      *messageWriter // NextWriter's, made on first use
	zw      *deflater      // permessage-deflate's send side, nil when not negotiated

	stats      counters
	closeSent  atomic.Bool
	peerClosed atomic.Bool // the peer's close frame has been read
	closed     atomic.Bool // rwc is closed
	moreIn     atomic.Bool // the reader has returned with more input buffered
	hasPend    atomic.Bool // a batch waits for FlushDelay
	done       atomic.Pointer[chan struct{}]
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

// agreed holds the handshake's agreement, apart from the Conn, since most connections have
// none and the Conn is kept small: idle connections cost what it weighs.
type agreed struct {
	subprotocol, extensions string
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
	c := &Conn{
		rwc:          rwc,
		role:         role,
		maxPayload:   orDefault(opts.MaxPayloadLen, DefaultMaxPayloadLen),
		writeTimeout: orDefault(opts.WriteTimeout, DefaultWriteTimeout),
		closeTimeout: orDefault(opts.CloseTimeout, DefaultCloseTimeout),
		flushDelay:   orDefault(opts.FlushDelay, DefaultFlushDelay),
		onPing:       opts.PingHandler,
		onPong:       opts.PongHandler,
	}
	if setup.Subprotocol != "" || setup.Extensions != "" {
		c.agreed = &agreed{setup.Subprotocol, setup.Extensions}
	}
	c.maxMessage = orDefault(opts.MaxMessageLen, max(DefaultMaxMessageLen, c.maxPayload))
	// A control frame is read whole into the buffer, so it must hold the largest one.
	c.rsize = max(orDefault(opts.ReadBufferSize, DefaultReadBufferSize), frame.MaxHeaderLen+frame.MaxControlPayload)
	if len(setup.Buffered) > 0 {
		c.rd.acquire(max(c.rsize, len(setup.Buffered)))
		c.rd.end = copy(c.rd.buf, setup.Buffered)
	}
	c.rd.raw, c.rd.rawFn = rawReader(c)
	c.wsize = max(orDefault(opts.WriteBufferSize, DefaultWriteBufferSize), frame.MaxHeaderLen+frame.MaxControlPayload)
	if role == Client {
		var seed [32]byte
		crand.Read(seed[:]) // never fails on supported platforms (Go 1.24+ crashes instead)
		c.rng = rand.NewChaCha8(seed)
	}
	c.initDeflate(setup.Deflate, opts.Compression)
	return c
}

// orDefault maps a zero option to its default and a negative one to "none" (-1).
func orDefault[T int | int64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return -1
	}
	return v
}

// Role reports which end of the connection c is.
func (c *Conn) Role() Role { return c.role }

// Subprotocol returns the subprotocol the handshake agreed on, or "".
func (c *Conn) Subprotocol() string {
	if c.agreed == nil {
		return ""
	}
	return c.agreed.subprotocol
}

// Extensions returns the extensions the handshake agreed on, as the header value, or "".
func (c *Conn) Extensions() string {
	if c.agreed == nil {
		return ""
	}
	return c.agreed.extensions
}

// MaxPayloadLen returns the frame payload limit in force, or -1 for none.
func (c *Conn) MaxPayloadLen() int64 { return c.maxPayload }

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
	if p := c.done.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{})
	if c.done.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *c.done.Load()
}

// closeStream closes rwc once.
func (c *Conn) closeStream() error {
	if !c.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	// A Done channel made before this point is closed here; one asked for later is closedChan.
	if p := c.done.Swap(closedChan); p != nil {
		close(*p)
	}
	return c.rwc.Close()
}

func (c *Conn) streamClosed() bool { return c.closed.Load() }
