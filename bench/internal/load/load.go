// Package load is the one load client every echo server is measured with. It speaks just
// enough WebSocket by hand (no library): an opening handshake written as bytes, frames built
// and masked once before the run, and a reader that parses server frame headers and skips
// payloads without copying them. Being the same for every server and cheap, it lets the
// servers' costs be compared on a machine where client and server share the cores.
package load

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one load run against one echo server.
type Config struct {
	Addr     string        // host:port of the server
	Path     string        // path of the WebSocket endpoint, "/ws" when empty
	Conns    int           // connections, each with its own reader and writer goroutine
	Size     int           // payload bytes per message (binary, one frame)
	Window   int           // messages in flight per connection (at least 1)
	Warmup   time.Duration // run before measuring
	Duration time.Duration // measured part of the run
	Check    bool          // compare every echoed byte with what was sent (costs client CPU)
}

// Result is what one run measured. Messages count round trips completed inside the measured
// part; MBPerSec counts payload bytes echoed back (one direction), in 10^6 bytes.
type Result struct {
	Conns     int     `json:"conns"`
	Size      int     `json:"size"`
	Window    int     `json:"window"`
	Messages  int64   `json:"messages"`
	Seconds   float64 `json:"seconds"`
	MsgPerSec float64 `json:"msg_per_sec"`
	MBPerSec  float64 `json:"mb_per_sec"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	P999us    float64 `json:"p999_us"`
}

// phases of a run, read by every connection's goroutines.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// Run opens cfg.Conns connections, keeps cfg.Window messages in flight on each for
// cfg.Warmup+cfg.Duration, and reports the measured part. Any connection that fails before the
// end fails the run.
func Run(cfg Config) (Result, error) {
	if cfg.Window < 1 {
		cfg.Window = 1
	}
	if cfg.Path == "" {
		cfg.Path = "/ws"
	}
	if err := WaitReady(cfg.Addr, 10*time.Second); err != nil {
		return Result{}, err
	}
	conns, err := DialN(cfg.Addr, cfg.Path, cfg.Conns)
	if err != nil {
		return Result{}, err
	}
	var phase atomic.Int32
	stop := make(chan struct{})
	base := time.Now()
	workers := make([]*worker, len(conns))
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(conns))
	for i, c := range conns {
		w := newWorker(c, cfg, &phase, stop, base, i)
		workers[i] = w
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := w.write(); err != nil && phase.Load() != phaseStop {
				errs <- fmt.Errorf("conn %d write: %w", w.id, err)
			}
		}()
		go func() {
			defer wg.Done()
			err := w.read() // ends only with an error: the connection closed at the end, or failed
			if phase.Load() != phaseStop {
				errs <- fmt.Errorf("conn %d read: %w", w.id, err)
			}
		}()
	}
	failed := func() error {
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
	sleep := func(d time.Duration) error {
		select {
		case err := <-errs:
			return err
		case <-time.After(d):
			return nil
		}
	}
	err = sleep(cfg.Warmup)
	var t0, t1 time.Time
	if err == nil {
		t0 = time.Now()
		phase.Store(phaseMeasure)
		err = sleep(cfg.Duration)
		phase.Store(phaseStop)
		t1 = time.Now()
	}
	phase.Store(phaseStop)
	close(stop)
	for _, w := range workers {
		w.conn.close()
	}
	wg.Wait()
	if err == nil {
		err = failed()
	}
	if err != nil {
		return Result{}, err
	}
	var h Histogram
	var n int64
	for _, w := range workers {
		h.Merge(&w.hist)
		n += w.done
	}
	secs := t1.Sub(t0).Seconds()
	return Result{
		Conns: cfg.Conns, Size: cfg.Size, Window: cfg.Window,
		Messages: n, Seconds: secs,
		MsgPerSec: float64(n) / secs,
		MBPerSec:  float64(n) * float64(cfg.Size) / secs / 1e6,
		P50us:     h.Quantile(0.50) / 1e3,
		P99us:     h.Quantile(0.99) / 1e3,
		P999us:    h.Quantile(0.999) / 1e3,
	}, nil
}

// worker drives one connection: write sends batches of prebuilt frames as window slots free
// up, read parses the echoes and frees the slots.
type worker struct {
	id     int
	conn   *Conn
	cfg    Config
	phase  *atomic.Int32
	stop   <-chan struct{}
	base   time.Time
	slots  chan struct{}  // one token per free in-flight slot
	sent   []atomic.Int64 // send time (ns since base) per slot, indexed by sequence % Window
	frame  []byte         // one masked frame
	batch  []byte         // Window copies of frame
	expect []byte         // the payload unmasked, for Check
	hist   Histogram
	done   int64 // messages completed while measuring
}

func newWorker(c *Conn, cfg Config, phase *atomic.Int32, stop <-chan struct{}, base time.Time, id int) *worker {
	payload := make([]byte, cfg.Size)
	rand.Read(payload)
	var key [4]byte
	rand.Read(key[:])
	frame := AppendFrame(nil, 0x2, key, payload)
	w := &worker{
		id: id, conn: c, cfg: cfg, phase: phase, stop: stop, base: base,
		slots: make(chan struct{}, cfg.Window),
		sent:  make([]atomic.Int64, cfg.Window),
		frame: frame,
		batch: bytes.Repeat(frame, cfg.Window),
	}
	if cfg.Check {
		w.expect = payload
	}
	for range cfg.Window {
		w.slots <- struct{}{}
	}
	return w
}

func (w *worker) write() error {
	var seq uint64
	win := uint64(w.cfg.Window)
	for {
		select {
		case <-w.slots:
		case <-w.stop:
			return nil
		}
		n := 1
	drain:
		for n < w.cfg.Window {
			select {
			case <-w.slots:
				n++
			default:
				break drain
			}
		}
		now := int64(time.Since(w.base))
		for range n {
			w.sent[seq%win].Store(now)
			seq++
		}
		if _, err := w.conn.nc.Write(w.batch[:n*len(w.frame)]); err != nil {
			return err
		}
	}
}

func (w *worker) read() error {
	var seq uint64
	win := uint64(w.cfg.Window)
	got := 0 // payload bytes of the current message so far
	return w.conn.readFrames(func(op byte, fin bool, payload []byte, frameDone bool) error {
		if op >= 0x8 {
			if op == 0x8 && frameDone {
				return errors.New("server sent close")
			}
			return nil // ping or pong from the server: ignored
		}
		if w.expect != nil {
			if got+len(payload) > len(w.expect) || !bytes.Equal(payload, w.expect[got:got+len(payload)]) {
				return fmt.Errorf("echo differs at byte %d", got)
			}
		}
		got += len(payload)
		if !fin || !frameDone {
			return nil
		}
		if got != w.cfg.Size {
			return fmt.Errorf("echo of %d bytes, sent %d", got, w.cfg.Size)
		}
		got = 0
		d := int64(time.Since(w.base)) - w.sent[seq%win].Load()
		seq++
		if w.phase.Load() == phaseMeasure {
			w.done++
			w.hist.Record(d)
		}
		select {
		case w.slots <- struct{}{}:
		default: // more echoes than messages sent: the next read's length check fails anyway
		}
		return nil
	})
}

// Conn is a client connection after the opening handshake.
type Conn struct {
	nc  net.Conn
	buf []byte // read buffer; buf[pos:end] is unread
	pos int
	end int
}

func (c *Conn) close() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetLinger(0) // reset: thousands of connections per run leave no TIME_WAIT behind
	}
	c.nc.Close()
}

// Close closes the connection at once, without a close handshake.
func (c *Conn) Close() { c.close() }

// readFrames parses server frames (unmasked) and calls f with each piece of payload as it is
// in the buffer, with frameDone on the last piece of each frame (an empty frame gets one call).
func (c *Conn) readFrames(f func(op byte, fin bool, payload []byte, frameDone bool) error) error {
	for {
		// header
		for c.end-c.pos < 2 || c.end-c.pos < headerLen(c.buf[c.pos:c.end]) {
			if err := c.more(); err != nil {
				return err
			}
		}
		b := c.buf[c.pos:c.end]
		hl := headerLen(b)
		fin, op := b[0]&0x80 != 0, b[0]&0x0f
		if b[1]&0x80 != 0 {
			return errors.New("masked frame from server")
		}
		var n uint64
		switch l := b[1] & 0x7f; l {
		case 126:
			n = uint64(binary.BigEndian.Uint16(b[2:]))
		case 127:
			n = binary.BigEndian.Uint64(b[2:])
		default:
			n = uint64(l)
		}
		c.pos += hl
		if n == 0 {
			if err := f(op, fin, nil, true); err != nil {
				return err
			}
			continue
		}
		for n > 0 {
			if c.end == c.pos {
				if err := c.more(); err != nil {
					return err
				}
			}
			k := uint64(c.end - c.pos)
			if k > n {
				k = n
			}
			n -= k
			p := c.buf[c.pos : c.pos+int(k)]
			c.pos += int(k)
			if err := f(op, fin, p, n == 0); err != nil {
				return err
			}
		}
	}
}

// headerLen is the length of the unmasked frame header at the start of b (len(b) >= 2).
func headerLen(b []byte) int {
	switch b[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// more reads more bytes into the buffer, moving what is unread to its start.
func (c *Conn) more() error {
	if c.pos == c.end {
		c.pos, c.end = 0, 0
	} else if c.end == len(c.buf) {
		c.end = copy(c.buf, c.buf[c.pos:c.end])
		c.pos = 0
	}
	n, err := c.nc.Read(c.buf[c.end:])
	c.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// AppendFrame appends one final client frame (masked with key) of opcode op to dst.
func AppendFrame(dst []byte, op byte, key [4]byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= key[i&3]
	}
	return dst
}

// WaitReady dials addr until it accepts a TCP connection, for at most timeout.
func WaitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server at %s not ready: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DialN opens n WebSocket connections to addr, up to 64 handshakes at a time.
func DialN(addr, path string, n int) ([]*Conn, error) {
	conns := make([]*Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(n, 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := Dial(addr, path)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if first != nil {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		return nil, first
	}
	return conns, nil
}

// Dial opens one connection and performs the opening handshake by hand.
func Dial(addr, path string) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	c := &Conn{nc: nc, buf: make([]byte, 64<<10)}
	for {
		if i := bytes.Index(c.buf[:c.end], []byte("\r\n\r\n")); i >= 0 {
			c.pos = i + 4
			break
		}
		if c.end == len(c.buf) {
			nc.Close()
			return nil, errors.New("handshake response too long")
		}
		n, err := nc.Read(c.buf[c.end:])
		c.end += n
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("reading the handshake response: %w", err)
		}
	}
	nc.SetDeadline(time.Time{})
	if err := checkResponse(c.buf[:c.pos], key); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func checkResponse(resp []byte, key string) error {
	br := bufio.NewReader(bytes.NewReader(resp))
	status, _ := br.ReadString('\n')
	if !bytes.HasPrefix([]byte(status), []byte("HTTP/1.1 101")) {
		return fmt.Errorf("handshake refused: %q", bytes.TrimSpace([]byte(status)))
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	want := base64.StdEncoding.EncodeToString(sum[:])
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return errors.New("handshake response without Sec-WebSocket-Accept")
		}
		name, value, ok := bytes.Cut(bytes.TrimSpace([]byte(line)), []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")) {
			if string(bytes.TrimSpace(value)) != want {
				return errors.New("wrong Sec-WebSocket-Accept")
			}
			return nil
		}
	}
}

// Histogram counts durations in nanoseconds in log-linear buckets: exact below 128 ns, then 64
// buckets per power of two (under 1.6% error), up to 2^40 ns (18 minutes).
type Histogram struct {
	counts []uint32
	total  uint64
}

const (
	histSub     = 64
	histBuckets = 2*histSub + 34*histSub
)

func bucketOf(v int64) int {
	if v < 2*histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 7 // v>>shift in [64, 128)
	i := 2*histSub + (shift-1)*histSub + int(v>>shift) - histSub
	return min(i, histBuckets-1)
}

// value returns the midpoint of bucket i.
func bucketValue(i int) float64 {
	if i < 2*histSub {
		return float64(i)
	}
	shift := (i-2*histSub)/histSub + 1
	m := (i-2*histSub)%histSub + histSub
	return (float64(m) + 0.5) * math.Ldexp(1, shift)
}

// Record adds one duration.
func (h *Histogram) Record(ns int64) {
	if h.counts == nil {
		h.counts = make([]uint32, histBuckets)
	}
	h.counts[bucketOf(ns)]++
	h.total++
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.counts == nil {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint32, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// Quantile returns the q-quantile in nanoseconds, or 0 without samples.
func (h *Histogram) Quantile(q float64) float64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return bucketValue(i)
		}
	}
	return bucketValue(histBuckets - 1)
}
