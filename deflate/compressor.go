package deflate

import (
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Levels, as compress/flate numbers them.
const (
	HuffmanOnly  = flate.HuffmanOnly
	BestSpeed    = flate.BestSpeed
	BestCompress = flate.BestCompression
	// DefaultLevel is BestSpeed: for the short messages WebSockets mostly carry it compresses
	// nearly as well as the higher levels at a fraction of their cost.
	DefaultLevel = flate.BestSpeed
)

// sendContext is the most a Compressor keeps of its messages for the next ones to refer to,
// whatever the window allows: on 1 KiB JSON messages, priming an engine with 4 KiB costs
// 24 µs a message and compresses to 0.182 of the input, with 32 KiB 112 µs and 0.187, with
// nothing 18 µs and 0.280 (BenchmarkCompressTakeover, a busy 2-core machine). The peer keeps
// the full window, as it must: references that reach less far are always allowed.
const sendContext = 4 << 10

// tail is what RFC 7692 section 7.2.1 removes from the end of a compressed message, and
// section 7.2.2 appends again before inflating it: the end of an empty stored block.
var tail = [4]byte{0x00, 0x00, 0xff, 0xff}

// errTail is returned when the engine's flush did not end as a sync flush must.
var errTail = errors.New("deflate: compressed data does not end with an empty stored block")

// Compressor compresses the messages one side of a connection sends, one at a time:
// Start, then Write the message's bytes, then Finish. What it writes to the destination is
// the message's payload as RFC 7692 section 7.2.1 has it, the final 0x00 0x00 0xff 0xff
// removed. A Compressor is not safe for concurrent use.
type Compressor struct {
	level int
	bits  int
	win   *window // the context kept between messages; nil without context takeover

	fw   *flate.Writer // borrowed from a pool while a message is compressed
	out  tailWriter
	fail bool // a message was cut short: the window must not be referred to
}

// NewCompressor returns a Compressor at the given level (HuffmanOnly through BestCompress; 0,
// and anything out of range, means DefaultLevel) whose back-references reach at most 2^bits
// bytes (MinWindowBits to MaxWindowBits; 0 means MaxWindowBits). With takeover, each message
// may refer to the ones before it, and the Compressor keeps their last 2^bits bytes, or 4 KiB
// if that is less; without, it keeps nothing between messages. Below MaxWindowBits the level is ignored, except
// HuffmanOnly: the engine that bounds its window has one level of its own.
func NewCompressor(level, bits int, takeover bool) *Compressor {
	c := &Compressor{level: level, bits: windowBits(bits)}
	if c.level < HuffmanOnly || c.level > BestCompress || c.level == flate.NoCompression {
		c.level = DefaultLevel
	}
	if takeover {
		c.win = newWindow(min(1<<c.bits, sendContext))
	}
	return c
}

// Level returns the level the Compressor compresses at, the default filled in.
func (c *Compressor) Level() int { return c.level }

// WindowBits returns the window the Compressor's back-references stay within, as a power of
// two.
func (c *Compressor) WindowBits() int { return c.bits }

// Start begins a message whose payload goes to dst.
func (c *Compressor) Start(dst io.Writer) {
	c.out = tailWriter{w: dst}
	c.fw = getWriter(c.level, c.bits)
	switch {
	case c.win == nil:
		c.fw.Reset(&c.out)
	case c.fail:
		// The peer lacks part of the last message: start again from an empty window, which a
		// sender may always do.
		c.win.reset()
		c.fail = false
		c.fw.Reset(&c.out)
	default:
		c.fw.ResetDict(&c.out, c.win.bytes())
	}
}

// Write compresses p as the next bytes of the message.
func (c *Compressor) Write(p []byte) (int, error) {
	n, err := c.fw.Write(p)
	if c.win != nil {
		c.win.add(p[:n])
	}
	if err != nil {
		c.fail = true
	}
	return n, err
}

// Finish ends the message: it flushes the engine, whose output's last four bytes it drops, and
// gives the engine back. After an error, the next message refers to none before it.
func (c *Compressor) Finish() error {
	err := c.fw.Flush()
	if err == nil && c.out.held != tail {
		err = errTail
	}
	c.release()
	if err != nil {
		c.fail = true
	}
	return err
}

// Abort ends a message that could not be sent whole: the engine goes back to its pool, and the
// next message refers to none before it, since the peer lacks part of this one.
func (c *Compressor) Abort() {
	if c.fw != nil {
		c.release()
	}
	c.fail = true
}

// release gives the engine back, holding neither the destination nor the window.
func (c *Compressor) release() {
	c.fw.ResetDict(nil, nil)
	putWriter(c.fw, c.level, c.bits)
	c.fw, c.out = nil, tailWriter{}
}

// Append compresses p as one whole message, appending its payload to dst. With context
// takeover it refers to the messages before it, as a message written with Start does.
func (c *Compressor) Append(dst, p []byte) []byte {
	b := appender{dst}
	c.Start(&b)
	c.Write(p) // an appender never fails, so neither do these
	c.Finish()
	return b.buf
}

// Record adds p to the window as if this Compressor had sent it: p is a message sent
// compressed by other means with no reference to earlier ones (AppendCompressed), which the
// peer's inflater adds to its window all the same. Without context takeover it does nothing.
func (c *Compressor) Record(p []byte) {
	if c.win != nil {
		c.win.add(p)
	}
}

// AppendCompressed appends p, compressed as one message with no context (as a sender without
// context takeover does, and as any sender may), to dst, at the given level and window, which
// NewCompressor describes. The result may be sent to any peer whose agreement allows that
// window, whether or not either side keeps context.
func AppendCompressed(dst, p []byte, level, bits int) []byte {
	return NewCompressor(level, bits, false).Append(dst, p)
}

type appender struct{ buf []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.buf = append(a.buf, p...)
	return len(p), nil
}

// tailWriter passes on what is written to it except the last four bytes, which it holds back:
// at the end of a message they are the tail that RFC 7692 removes.
type tailWriter struct {
	w    io.Writer
	held [4]byte
	n    int // bytes in held
}

func (t *tailWriter) Write(p []byte) (int, error) {
	if t.n+len(p) <= len(t.held) {
		t.n += copy(t.held[t.n:], p)
		return len(p), nil
	}
	emit := t.n + len(p) - len(t.held) // bytes that are certainly not the last four
	if k := min(t.n, emit); k > 0 {
		if _, err := t.w.Write(t.held[:k]); err != nil {
			return 0, err
		}
		t.n = copy(t.held[:], t.held[k:t.n])
		emit -= k
	}
	if emit > 0 {
		if _, err := t.w.Write(p[:emit]); err != nil {
			return 0, err
		}
	}
	t.n += copy(t.held[t.n:], p[emit:])
	return len(p), nil
}

// The engines' pools: by level at the full window, by window size below it.
var (
	levelPools  [BestCompress - HuffmanOnly + 1]sync.Pool
	windowPools [MaxWindowBits - MinWindowBits]sync.Pool
)

func pool(level, bits int) *sync.Pool {
	if bits < MaxWindowBits && level != HuffmanOnly {
		return &windowPools[bits-MinWindowBits]
	}
	return &levelPools[level-HuffmanOnly]
}

func getWriter(level, bits int) *flate.Writer {
	if fw, ok := pool(level, bits).Get().(*flate.Writer); ok {
		return fw
	}
	var fw *flate.Writer
	if bits < MaxWindowBits && level != HuffmanOnly {
		fw, _ = flate.NewWriterWindow(nil, 1<<bits)
	} else {
		fw, _ = flate.NewWriter(nil, level)
	}
	return fw
}

func putWriter(fw *flate.Writer, level, bits int) { pool(level, bits).Put(fw) }
