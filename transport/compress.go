package transport

import (
	"runtime"
	"sync/atomic"

	"github.com/ecows/ecows/deflate"
	"github.com/ecows/ecows/frame"
)

// This file is permessage-deflate (RFC 7692) as a Conn sees it: the options, the agreement
// the handshake hands to NewConn, and the state each side keeps. The codec is package
// deflate; inflate.go reads compressed messages and deflate.go writes them.

// Defaults for the zero values of CompressionOptions.
const (
	// DefaultCompressionLevel is deflate.DefaultLevel, BestSpeed: for the short messages
	// WebSockets mostly carry it compresses nearly as well as the higher levels at a fraction
	// of their cost.
	DefaultCompressionLevel = deflate.DefaultLevel
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
	// Level is the compression level for sending, from deflate.HuffmanOnly (-2) through
	// deflate.BestCompress (9); 0, and anything out of range, means DefaultCompressionLevel.
	// Under a window smaller than 32 KiB the level is ignored (see deflate.NewCompressor).
	Level int

	// Threshold is the message size in bytes under which messages are sent uncompressed; 0
	// means DefaultCompressionThreshold, or DefaultCompressionThresholdTakeover when this side
	// keeps its context, and a negative value compresses every message.
	Threshold int

	// ContextTakeover keeps the context from one message to the next in both directions (RFC
	// 7692 section 7.1.1), which compresses repetitive messages far better. The context kept
	// is the window only: the last 2^max_window_bits bytes received (32 KiB at most) and the
	// last 4 KiB sent (see package deflate), about 37 KiB per connection at the full window
	// and 2.5 KiB at 10 bits (TestDeflateIdleMemory); the compressor and decompressor are
	// borrowed from pools per message and primed with it. Without it, the server's answer carries
	// server_no_context_takeover and client_no_context_takeover (Dial offers both), and an
	// idle connection holds no compression state.
	ContextTakeover bool

	// MaxWindowBits bounds the LZ77 window, as a power of two from 8 to 15 (0 and negative
	// values mean no limit, 15; values from 1 to 7 mean 8), in
	// both directions as far as the handshake allows (RFC 7692 section 7.1.2): this side
	// compresses within it, and asks the peer to (Upgrade answers client_max_window_bits
	// when the client offers it, Dial offers client_max_window_bits and
	// server_max_window_bits), so that with context takeover each side keeps that much. A
	// server cannot limit a client that does not offer client_max_window_bits.
	MaxWindowBits int

	// PreparedOwnContext makes a Conn that keeps its context send a Prepared message (a
	// broadcast) compressed with its own context, one compression per connection, instead of
	// the form the Prepared compressed once for every connection, which refers to no earlier
	// message. Conns without context takeover always send the shared form.
	PreparedOwnContext bool
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
	// so that this end keeps nothing of the peer's messages between them.
	PeerNoContextTakeover bool
	// MaxWindowBits is the largest LZ77 window, as a power of two from 8 to 15, that this end
	// may compress with; 0 means 15. Back-references reach no further, and with context
	// takeover this end keeps that many bytes of what it sent.
	MaxWindowBits int
	// PeerMaxWindowBits is the largest window the peer may compress with; 0 means 15. With
	// the peer's context takeover this end keeps that many bytes of what it received.
	PeerMaxWindowBits int
}

// Errors of the compressed read path.
var (
	errRSV1    = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "RSV1 set on a control frame or a continuation frame"}
	errDeflate = &frame.ProtocolError{Code: frame.CloseInvalidPayload, Reason: "invalid compressed data"}
)

// inflater is the receive side of permessage-deflate; it is guarded by Conn.rmu.
type inflater struct {
	z      *deflate.Inflater
	msgLen int64 // inflated bytes of the current message so far

	// RecvFrame's inflated payloads: a pooled buffer, reused for the frames of a message and
	// given back at the first read call after it (zReadCall), and the length already inflated
	// into it by a call that timed out inside the frame.
	outp   *[]byte
	outLen int
}

// deflater is the send side. Its fields are guarded by Conn.msgMu, except off.
type deflater struct {
	z         *deflate.Compressor
	takeover  bool
	ownCtx    bool // PreparedOwnContext
	threshold int
	off       atomic.Bool
	sink      zsink
}

// initDeflate sets up compression as the handshake agreed; NewConn calls it.
func (c *Conn) initDeflate(p DeflateParams, o *CompressionOptions) {
	if !p.Enabled {
		return
	}
	if o == nil {
		o = &CompressionOptions{}
	}
	takeover := !p.NoContextTakeover
	z := &deflater{
		z:         deflate.NewCompressor(o.Level, p.MaxWindowBits, takeover),
		takeover:  takeover,
		ownCtx:    o.PreparedOwnContext,
		threshold: o.Threshold,
	}
	if z.threshold == 0 {
		z.threshold = DefaultCompressionThreshold
		if takeover {
			z.threshold = DefaultCompressionThresholdTakeover
		}
	}
	c.ext.zw = z
	c.ext.z = &inflater{z: deflate.NewInflater(p.PeerMaxWindowBits, !p.PeerNoContextTakeover)}
	// A Conn dropped without Close in the middle of a compressed message would leave the
	// inflater's coroutine waiting forever; this ends it once the Conn is garbage.
	runtime.AddCleanup(c, (*deflate.Inflater).Close, c.ext.z.z)
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
// by WriteMessage, NextWriter, SendText, SendBinary and WritePrepared; SendFrame never
// compresses. Without a negotiated compression it does nothing. An uncompressed message is
// always allowed (RFC 7692 section 6), and the peer needs no notice.
func (c *Conn) SetCompression(on bool) {
	if z := c.deflater(); z != nil {
		z.off.Store(!on)
	}
}

// compressing reports whether a message of n bytes (-1: not known yet) goes out compressed.
func (c *Conn) compressing(n int) bool {
	z := c.deflater()
	return z != nil && !z.off.Load() && (n < 0 || n >= z.threshold)
}
