package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// benchHeader is the start of every bench message: its sequence number on its connection and
// when it was sent, in nanoseconds since the run started, so that the echo tells its own
// round-trip time.
const benchHeader = 16

// drainTimeout bounds the wait for the echoes still in flight when a run ends.
const drainTimeout = 5 * time.Second

// benchConfig is what "ecows bench" was asked to do.
type benchConfig struct {
	url      string
	conns    int           // connections
	size     int           // bytes per message, at least benchHeader
	window   int           // messages in flight per connection
	duration time.Duration // how long to send
}

// benchResult is what a run measured.
type benchResult struct {
	Conns    int
	Messages uint64        // echoes received
	Bytes    uint64        // payload bytes in those echoes
	Elapsed  time.Duration // from the start to the last echo
	// Round-trip latency percentiles, accurate to about 3%.
	P50, P99, P999 time.Duration
}

// MessagesPerSec returns the rate of echoes.
func (r benchResult) MessagesPerSec() float64 { return perSec(float64(r.Messages), r.Elapsed) }

// MBPerSec returns the rate of echoed payload in megabytes (10^6 bytes) per second.
func (r benchResult) MBPerSec() float64 { return perSec(float64(r.Bytes)/1e6, r.Elapsed) }

func perSec(x float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return x / d.Seconds()
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "URL [flags]", stderr)
	cfg := benchConfig{}
	fs.IntVar(&cfg.conns, "c", 64, "number of connections")
	fs.IntVar(&cfg.size, "size", 1024, fmt.Sprintf("message size in bytes (at least %d)", benchHeader))
	fs.IntVar(&cfg.window, "window", 16, "messages in flight per connection")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run")
	pos, err := parse(fs, args, "URL")
	if err == nil {
		cfg.url = pos[0]
		switch u, perr := url.Parse(cfg.url); {
		case perr != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "":
			err = usagef(fs, "URL must be ws://host/path or wss://host/path, not %q", cfg.url)
		case cfg.conns < 1:
			err = usagef(fs, "-c must be at least 1")
		case cfg.size < benchHeader || cfg.size > 64<<20:
			err = usagef(fs, "-size must be from %d to %d", benchHeader, 64<<20)
		case cfg.window < 1:
			err = usagef(fs, "-window must be at least 1")
		case cfg.duration <= 0:
			err = usagef(fs, "-duration must be positive")
		}
	}
	if err != nil {
		return exitCode("bench", err, stderr)
	}
	fmt.Fprintf(stdout, "ecows bench: %s, %d connections, %d-byte messages, window %d, %v\n",
		cfg.url, cfg.conns, cfg.size, cfg.window, cfg.duration)
	res, err := bench(ctx, cfg, stderr)
	if res.Messages > 0 {
		fmt.Fprintf(stdout, "  messages    %d in %v (%.0f/s)\n", res.Messages, res.Elapsed.Round(time.Millisecond), res.MessagesPerSec())
		fmt.Fprintf(stdout, "  throughput  %.2f MB/s of echoed payload\n", res.MBPerSec())
		fmt.Fprintf(stdout, "  latency     p50 %v  p99 %v  p99.9 %v\n", round(res.P50), round(res.P99), round(res.P999))
	}
	return exitCode("bench", err, stderr)
}

// round keeps three significant digits or so of a latency.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d.Round(10 * time.Nanosecond)
}

// bench runs the load: cfg.conns connections to an echo server, each keeping up to
// cfg.window binary messages in flight, for cfg.duration or until ctx ends. It writes a
// progress line to progress about once a second. A connection that fails ends the run with
// its error, and the result so far.
func bench(ctx context.Context, cfg benchConfig, progress io.Writer) (benchResult, error) {
	conns, err := dialAll(ctx, cfg)
	if err != nil {
		return benchResult{}, err
	}
	start := time.Now()
	workers := make([]*benchWorker, len(conns))
	for i, c := range conns {
		workers[i] = &benchWorker{c: c, cfg: &cfg, start: start}
	}

	stop := make(chan struct{})
	failed := make(chan struct{}, len(workers))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w.run(stop) != nil {
				failed <- struct{}{}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	timer := time.NewTimer(cfg.duration)
	defer timer.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timeUp, cancelled, failure := timer.C, ctx.Done(), (<-chan struct{})(failed)
	halt := func() {
		close(stop)
		timeUp, cancelled, failure = nil, nil, nil
	}
	var last uint64
	for {
		select {
		case <-tick.C:
			n := total(workers)
			fmt.Fprintf(progress, "bench: %3.0fs  %8d msg/s  %8.2f MB/s\n",
				time.Since(start).Seconds(), n-last, float64(n-last)*float64(cfg.size)/1e6)
			last = n
		case <-timeUp:
			halt()
		case <-cancelled:
			halt()
		case <-failure:
			halt()
		case <-done:
			return result(workers), firstError(workers)
		}
	}
}

// dialAll opens cfg.conns connections at once; if any fails, it closes the others.
func dialAll(ctx context.Context, cfg benchConfig) ([]*transport.Conn, error) {
	opts := &handshake.DialOptions{
		Options: transport.Options{
			MaxPayloadLen: max(int64(cfg.size), transport.DefaultMaxPayloadLen),
			MaxMessageLen: max(int64(cfg.size), transport.DefaultMaxMessageLen),
		},
		Timeout: 10 * time.Second,
	}
	conns := make([]*transport.Conn, cfg.conns)
	errs := make([]error, cfg.conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], _, errs[i] = handshake.Dial(ctx, cfg.url, opts)
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		return conns, nil
	}
	for _, c := range conns {
		if c != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Close(frame.CloseNormal, "")
			}()
		}
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, handshakeError(e) // the first is enough; the others are alike
		}
	}
	return nil, err
}

// benchWorker drives one connection: a writer keeps up to window messages in flight, a
// reader takes the echoes and records their round trips.
type benchWorker struct {
	c     *transport.Conn
	cfg   *benchConfig
	start time.Time

	received atomic.Uint64 // echoes so far, read by the progress line
	hist     histogram     // written by the reader, read once it has ended
	last     time.Duration // when the last echo arrived, since start; same
	err      error
}

// run drives the connection until stop is closed or it fails, waits for the echoes in
// flight and closes it. It returns the error that ended it early, also kept in w.err.
func (w *benchWorker) run(stop <-chan struct{}) error {
	sem := make(chan struct{}, w.cfg.window) // one token per message in flight
	halt := make(chan struct{})              // stop, or the reader failed
	readCtx, cancelRead := context.WithCancel(context.Background())
	defer cancelRead()
	readerDone := make(chan error, 1)
	go func() { readerDone <- w.read(readCtx, sem) }()
	writerDone := make(chan error, 1)
	go func() { writerDone <- w.write(halt, sem) }()

	select {
	case <-stop:
	case err := <-readerDone:
		close(halt)
		w.c.CloseNow() // unblocks a writer stuck on a server that stopped reading
		<-writerDone
		w.err = err
		return err
	}
	close(halt)
	if err := <-writerDone; err != nil {
		w.c.CloseNow()
		<-readerDone
		w.err = err
		return err
	}
	// Nothing is in flight once every token is back.
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	var err error
	readerEnded := false
drain:
	for range w.cfg.window {
		select {
		case sem <- struct{}{}:
		case err = <-readerDone:
			readerEnded = true
			break drain
		case <-timer.C:
			err = fmt.Errorf("%d echoes did not come back within %v", w.cfg.window-len(sem), drainTimeout)
			break drain
		}
	}
	cancelRead()
	if !readerEnded {
		if rerr := <-readerDone; err == nil {
			err = rerr
		}
	}
	w.c.Close(frame.CloseNormal, "")
	w.err = err
	return err
}

// write sends messages whenever a token is free, until halt is closed.
func (w *benchWorker) write(halt <-chan struct{}, sem chan struct{}) error {
	buf := make([]byte, w.cfg.size)
	for i := range buf[benchHeader:] {
		buf[benchHeader+i] = byte(i)
	}
	for seq := uint64(0); ; seq++ {
		select {
		case sem <- struct{}{}:
		case <-halt:
			return nil
		}
		select {
		case <-halt:
			<-sem
			return nil
		default:
		}
		binary.LittleEndian.PutUint64(buf, seq)
		binary.LittleEndian.PutUint64(buf[8:], uint64(time.Since(w.start)))
		if _, err := w.c.WriteMessage(context.Background(), frame.OpBinary, buf); err != nil {
			return fmt.Errorf("sending: %w", err)
		}
	}
}

// read takes echoes until ctx is cancelled, checks that they come back whole and in order,
// and records their round trips.
func (w *benchWorker) read(ctx context.Context, sem <-chan struct{}) error {
	var buf []byte
	for want := uint64(0); ; want++ {
		op, msg, err := w.c.ReadMessage(ctx, buf[:0])
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receiving: %w", err)
		}
		buf = msg
		now := time.Since(w.start)
		if op != frame.OpBinary || len(msg) != w.cfg.size {
			return fmt.Errorf("the server answered a %d-byte binary message with a %d-byte %s message: is it an echo server?",
				w.cfg.size, len(msg), op)
		}
		if seq := binary.LittleEndian.Uint64(msg); seq != want {
			return fmt.Errorf("echo %d came back in place of %d", seq, want)
		}
		sent := time.Duration(binary.LittleEndian.Uint64(msg[8:]))
		w.hist.record(uint64(max(now-sent, 0)))
		w.last = now
		w.received.Add(1)
		<-sem
	}
}

func total(workers []*benchWorker) uint64 {
	var n uint64
	for _, w := range workers {
		n += w.received.Load()
	}
	return n
}

// firstError returns the error of the first connection that failed, saying how many did.
func firstError(workers []*benchWorker) error {
	var first error
	failed := 0
	for _, w := range workers {
		if w.err != nil {
			failed++
			if first == nil {
				first = w.err
			}
		}
	}
	if failed > 1 {
		return fmt.Errorf("%d of %d connections failed, the first with: %w", failed, len(workers), first)
	}
	return first
}

// result sums what the workers measured; they must have ended.
func result(workers []*benchWorker) benchResult {
	var h histogram
	r := benchResult{Conns: len(workers)}
	for _, w := range workers {
		h.merge(&w.hist)
		r.Messages += w.received.Load()
		r.Elapsed = max(r.Elapsed, w.last)
		r.Bytes += w.received.Load() * uint64(w.cfg.size)
	}
	r.P50 = time.Duration(h.quantile(0.50))
	r.P99 = time.Duration(h.quantile(0.99))
	r.P999 = time.Duration(h.quantile(0.999))
	return r
}

// subBits sets the histogram's precision: 2^subBits buckets per power of two, so a value is
// known to within 1/2^subBits (about 3%).
const subBits = 5

// histogram counts values (nanoseconds) in log-linear buckets: exact below 2^subBits, then
// 2^subBits buckets per power of two. It takes 15 KiB whatever the number of samples.
type histogram struct {
	counts [(64 - subBits + 1) << subBits]uint64
	n      uint64
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// bucketValue returns the middle of bucket i.
func bucketValue(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	low := uint64(i&(1<<subBits-1)+1<<subBits) << shift
	return low + (uint64(1)<<shift)/2
}

func (h *histogram) record(v uint64) {
	h.counts[bucketOf(v)]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.n += o.n
}

// quantile returns the value at quantile q (0 < q <= 1), or 0 when there are no values.
func (h *histogram) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank && n > 0 {
			return bucketValue(i)
		}
	}
	return bucketValue(len(h.counts) - 1)
}
