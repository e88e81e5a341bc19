package deflate

import (
	"bufio"
	"errors"
	"io"
	"iter"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Errors of Inflater.Read.
var (
	// ErrNeedInput says that the Inflater can give nothing more before it is fed the next
	// bytes of the message.
	ErrNeedInput = errors.New("deflate: the inflater needs more input")
	// ErrCorrupt says that the message is not valid DEFLATE data, or does not end where the
	// message does; the peer is at fault (WebSocket close code 1007).
	ErrCorrupt = errors.New("deflate: invalid compressed data")
	// ErrClosed is returned once the Inflater has been closed.
	ErrClosed = errors.New("deflate: inflater closed")
)

// errStopped is the coroutine's own signal that it was stopped.
var errStopped = errors.New("deflate: inflater stopped")

// end is tail followed by an empty stored block with BFINAL set: appended to a message, it
// makes the engine reach io.EOF exactly at the message's end, so that data which does not end
// at a block boundary is caught. A sender ends every message at one (RFC 7692 section 7.2.1),
// with context takeover too, so each message can be inflated by an engine of its own.
var end = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Inflater inflates the messages one side of a connection receives, one at a time: Begin,
// then Feed it the message's compressed bytes as they arrive and Read what they inflate to,
// until Read returns io.EOF. An Inflater is not safe for concurrent use.
//
// The bytes fed are inflated in place and must stay unchanged until Read has consumed them
// (Consumed reports it). A message fed whole, in one Feed, is inflated directly; one that comes
// in pieces is inflated by an engine running in a coroutine (iter.Pull) that is suspended
// while the caller fetches the next piece, since a DEFLATE block may span any number of them
// and the engine cannot pause on its own. Neither the engine nor the coroutine outlives the
// message.
type Inflater struct {
	win *window // the peer's context, kept between messages; nil when it keeps none
	st  *engine // borrowed while a message is inflated
	src input

	done    bool // the message is fully inflated
	started bool // the message has been fed some input
	closed  bool

	// The coroutine, when one runs.
	next  func() (struct{}, bool)
	stop  func()
	ended bool   // the engine reached a final block
	out   []byte // inflated by the coroutine, not yet handed out
	err   error  // the engine failed
}

// input is the engine's source: what was fed, then end.
type input struct {
	in      []byte // fed and not yet consumed
	left    []byte // end, once the message's last input has been fed, until it is read
	final   bool   // the message's last input has been fed
	tailed  bool   // end has been handed to the engine
	yield   func(struct{}) bool
	starved bool // the coroutine waits for input
}

// engine is a decompressor with the buffer it reads its input through and the buffer its
// coroutine inflates into. The decompressor reads a *bufio.Reader by its concrete type, which
// costs 9% less CPU than reading the input through an interface (transport's
// BenchmarkCompressedRead, 64 KiB text: 0.83 s against 0.91 s of CPU for 3,000 messages).
type engine struct {
	fr   io.ReadCloser // also a flate.Resetter
	br   bufio.Reader
	obuf [4096]byte
}

var engines sync.Pool

// NewInflater returns an Inflater for a peer whose back-references reach at most 2^bits bytes
// (MinWindowBits to MaxWindowBits; 0 means MaxWindowBits). With takeover the peer's messages
// may refer to the ones before them, and the Inflater keeps their last 2^bits bytes; without,
// it keeps nothing between messages.
func NewInflater(bits int, takeover bool) *Inflater {
	z := &Inflater{}
	if takeover {
		z.win = newWindow(1 << windowBits(bits))
	}
	return z
}

// Begin starts a message, dropping what is left of the one before.
func (z *Inflater) Begin() {
	z.release()
	z.done, z.started = false, false
}

// Feed hands z the next compressed bytes of the message; final marks the last. A message
// that carries no byte at all inflates to nothing (DEFLATE data is never empty, but
// zlib-based receivers accept an empty payload as an empty message, and so does this one).
func (z *Inflater) Feed(p []byte, final bool) {
	s := &z.src
	s.in, s.final = p, final
	if final {
		s.left = end
	}
	if z.ended {
		s.in, s.left = nil, nil // the peer's final block ended its data: the rest carries nothing
	}
	switch {
	case z.started || z.closed:
	case len(p) > 0:
		z.started = true
		z.acquire()
		if !final {
			z.next, z.stop = iter.Pull(z.run)
		}
	case final:
		s.left = nil
		z.done = true
	}
}

// Consumed reports whether z has consumed all it was fed: only then may the caller reuse
// those bytes and Feed the next ones.
func (z *Inflater) Consumed() bool { return len(z.src.in) == 0 }

// Hungry reports whether z can give nothing more before it is fed: a message begun and not
// ended, all its input consumed and all its output handed out, or none fed yet but empty
// pieces.
func (z *Inflater) Hungry() bool {
	s := &z.src
	switch {
	case z.closed || z.done || s.final || len(s.in) > 0:
		return false
	case !z.started:
		return true
	}
	return z.next != nil && len(z.out) == 0 && z.err == nil && (s.starved || z.ended)
}

// Read inflates into p (len(p) > 0). It returns io.EOF at the end of the message,
// ErrNeedInput when nothing more can come before the next Feed, ErrCorrupt for invalid data,
// and ErrClosed after Close.
func (z *Inflater) Read(p []byte) (int, error) {
	n, err := z.read(p)
	if z.win != nil && n > 0 {
		z.win.add(p[:n])
	}
	if err == io.EOF && z.st != nil {
		z.finish()
	}
	return n, err
}

func (z *Inflater) read(p []byte) (int, error) {
	s := &z.src
	switch {
	case z.closed:
		return 0, ErrClosed
	case z.done:
		return 0, io.EOF
	case !z.started:
		return 0, ErrNeedInput
	case z.next == nil:
		n, err := z.st.fr.Read(p)
		switch {
		case err == io.EOF:
			z.done = true
			if n == 0 {
				return 0, io.EOF
			}
		case err != nil:
			return n, ErrCorrupt
		}
		return n, nil
	}
	for {
		switch {
		case len(z.out) > 0:
			n := copy(p, z.out)
			z.out = z.out[n:]
			return n, nil
		case z.err != nil:
			return 0, ErrCorrupt
		case z.ended:
			s.in, s.left = nil, nil
			if s.final {
				z.done = true
				return 0, io.EOF
			}
			return 0, ErrNeedInput
		case s.starved && len(s.in) == 0 && len(s.left) == 0:
			if s.final {
				return 0, ErrCorrupt // the data did not end with the message
			}
			return 0, ErrNeedInput
		}
		if _, ok := z.next(); !ok {
			return 0, ErrCorrupt
		}
	}
}

// finish ends a fully inflated message. When the peer's own final block ended its data before
// the message did (RFC 7692 section 7.2.3.4), the peer starts its next message from an empty
// window, so the window is emptied too.
func (z *Inflater) finish() {
	if z.win != nil && !(z.src.tailed && len(z.src.in) == 0 && z.st.br.Buffered() == 0) {
		z.win.reset()
	}
	z.release()
}

// release gives back the engine and stops the coroutine.
func (z *Inflater) release() {
	if z.next != nil {
		z.stop()
		z.next, z.stop = nil, nil
	}
	if z.st != nil {
		z.st.br.Reset(noInput{}) // holding nothing of z while pooled
		z.st.fr.(flate.Resetter).Reset(&z.st.br, nil)
		engines.Put(z.st)
		z.st = nil
	}
	z.src = input{}
	z.out, z.err, z.ended = nil, nil, false
}

// Close releases what z holds; Read fails with ErrClosed from then on.
func (z *Inflater) Close() {
	z.release()
	z.closed, z.win = true, nil
}

// acquire takes an engine from the pool, primed with the window.
func (z *Inflater) acquire() {
	var dict []byte
	if z.win != nil {
		dict = z.win.bytes()
	}
	st, ok := engines.Get().(*engine)
	if !ok {
		st = &engine{}
		st.br.Reset(&z.src)
		st.fr = flate.NewReaderDict(&st.br, dict)
	} else {
		st.br.Reset(&z.src)
		st.fr.(flate.Resetter).Reset(&st.br, dict)
	}
	z.st = st
}

// run is the coroutine: it inflates into obuf and yields each chunk; the input yields when it
// runs dry (see more).
func (z *Inflater) run(yield func(struct{}) bool) {
	z.src.yield = yield
	defer func() { z.src.yield = nil }()
	for {
		n, err := z.st.fr.Read(z.st.obuf[:])
		z.out = z.st.obuf[:n]
		switch {
		case err == io.EOF:
			z.ended = true
		case err != nil:
			z.err = err
		}
		if !yield(struct{}{}) || z.err != nil || z.ended {
			return
		}
	}
}

func (s *input) ReadByte() (byte, error) {
	for len(s.in) == 0 {
		if err := s.more(); err != nil {
			return 0, err
		}
	}
	b := s.in[0]
	s.in = s.in[1:]
	return b, nil
}

func (s *input) Read(p []byte) (int, error) {
	for len(s.in) == 0 {
		if err := s.more(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.in)
	s.in = s.in[n:]
	return n, nil
}

// more refills in: with end once the last input is consumed, or, in the coroutine, by waiting
// for the next Feed. Directly, the input is complete, and running out of it means the data is
// truncated.
func (s *input) more() error {
	switch {
	case len(s.left) > 0:
		s.in, s.left, s.tailed = s.left, nil, true
		return nil
	case s.final || s.yield == nil:
		return io.ErrUnexpectedEOF
	}
	s.starved = true
	ok := s.yield(struct{}{})
	s.starved = false
	if !ok {
		return errStopped
	}
	return nil
}

// noInput is what a pooled engine reads from: nothing.
type noInput struct{}

func (noInput) Read([]byte) (int, error) { return 0, io.EOF }
func (noInput) ReadByte() (byte, error)  { return 0, io.EOF }
