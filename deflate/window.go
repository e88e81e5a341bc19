package deflate

// Window sizes, as powers of two (the max_window_bits parameters of RFC 7692 section 7.1.2).
const (
	MinWindowBits = 8
	MaxWindowBits = 15
)

// windowBits returns bits within [MinWindowBits, MaxWindowBits], 0 meaning MaxWindowBits.
func windowBits(bits int) int {
	if bits == 0 {
		return MaxWindowBits
	}
	return min(max(bits, MinWindowBits), MaxWindowBits)
}

// window is the context one direction keeps between messages under context takeover: the
// last size bytes of its messages, uncompressed, which the next message may refer to. Its
// buffer grows with what passes through it up to size and never beyond, so that a connection
// exchanging short messages keeps little.
type window struct {
	buf  []byte
	size int
}

func newWindow(size int) *window { return &window{size: size} }

// add appends p to the window, dropping what falls out of it.
func (w *window) add(p []byte) {
	if len(p) >= w.size {
		w.buf = append(w.grow(w.size)[:0], p[len(p)-w.size:]...)
		return
	}
	if keep := w.size - len(p); len(w.buf) > keep {
		w.buf = w.buf[:copy(w.buf, w.buf[len(w.buf)-keep:])]
	}
	w.buf = append(w.grow(len(w.buf)+len(p)), p...)
}

// grow returns buf with room for n bytes: capacity doubles, but never past size, so the
// buffer of a full window is exactly its size.
func (w *window) grow(n int) []byte {
	if n <= cap(w.buf) {
		return w.buf
	}
	b := make([]byte, len(w.buf), min(max(n, 2*cap(w.buf), 256), w.size))
	copy(b, w.buf)
	return b
}

// reset empties the window: the next message refers to nothing before it.
func (w *window) reset() { w.buf = w.buf[:0] }

func (w *window) bytes() []byte { return w.buf }
