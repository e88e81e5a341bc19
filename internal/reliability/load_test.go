package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// TestLoad opens ECOWS_LOAD_CONNS connections (default 1,000) to an echo server built as
// "ecows serve" builds it, and has each echo sequence-numbered, checksummed messages for
// ECOWS_LOAD_DURATION (default 10 s): batches of 1 to 8 messages of 40 bytes to 12 KiB, text
// and binary, some sent in fragments through NextWriter. Every message must come back once,
// intact and in order; every connection then ends with a clean close handshake, and in both
// processes the goroutine count returns to its baseline and the heap to near its baseline.
//
// The clients run in a child process (this test binary again, with ECOWS_LOAD_SERVER set):
// 10,000 connections need 10,000 descriptors on each side, which one process may not be
// allowed, and the server's memory per connection is then measured alone.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped under -short")
	}
	conns := envInt(t, "ECOWS_LOAD_CONNS", 1000)
	duration := envDuration(t, "ECOWS_LOAD_DURATION", 10*time.Second)
	raiseNofile(t, uint64(conns+1024))
	if url := os.Getenv("ECOWS_LOAD_SERVER"); url != "" {
		runLoadClients(t, url, conns, duration)
		return
	}

	// The runtime never frees a goroutine's descriptor (some 400 bytes of heap): it keeps it
	// for the next goroutine. Warm that free list up to the run's peak (a handler and a
	// keepalive goroutine per connection), so that the baseline already holds them and what
	// the run keeps shows.
	warmGoroutines(3*conns + 256)
	goroutines0 := runtime.NumGoroutine()
	mem0 := liveMemory()
	fig, ok := runLoadServer(t, conns, duration)
	if !ok {
		return
	}

	// Everything the run allocated is unreachable now: the server is shut down and
	// runLoadServer has returned.
	goroutines, ok := wstest.WaitGoroutines(goroutines0, 10*time.Second)
	if !ok {
		buf := make([]byte, 1<<20)
		t.Fatalf("server process: goroutines: %d before, %d after\n%s", goroutines0, goroutines, buf[:runtime.Stack(buf, true)])
	}
	mem := liveMemory()
	t.Logf("server process after the run: %d goroutines (baseline %d), heap %s (baseline %s, %+.1f bytes per connection)",
		goroutines, goroutines0, mib(mem.heap), mib(mem0.heap), float64(signedDiff(mem.heap, mem0.heap))/float64(conns))
	if slack := heapSlack(conns); mem.heap > mem0.heap+slack {
		t.Errorf("server process: heap %s after the run, baseline %s: more than %s kept", mib(mem.heap), mib(mem0.heap), mib(slack))
	}
	c := fig.client
	t.Logf("%d connections held; server: %.1f KiB per connection (heap %.1f KiB, stacks %.1f KiB), %.1f goroutines per connection; client: %.1f KiB per connection",
		conns, perConn(fig.held.total(), mem0.total(), conns),
		perConn(fig.held.heap, mem0.heap, conns), perConn(fig.held.stack, mem0.stack, conns),
		float64(fig.goroutines-goroutines0)/float64(conns),
		perConn(c.HeldHeap+c.HeldStack, c.BaseHeap+c.BaseStack, conns))
	t.Logf("dial %v, echo %v, close %v: %d messages checked (%.0f/s), %s each way; server peak heap under load %s",
		c.Dial.Round(time.Millisecond), c.Run.Round(time.Millisecond), c.Close.Round(time.Millisecond),
		c.Messages, float64(c.Messages)/c.Run.Seconds(), mib(c.Bytes), mib(fig.peakHeap))
}

// heapSlack is how far above its baseline the heap may stay after a run: pools and maps that
// keep their size may hold a little, but nothing that grows with the messages, and less than
// 128 bytes per connection.
func heapSlack(conns int) uint64 { return 2<<20 + uint64(conns)*128 }

func perConn(held, base uint64, conns int) float64 {
	return float64(signedDiff(held, base)) / float64(conns) / 1024
}

// loadReport is what the client process tells the server process, one JSON line at a time
// on its standard output, prefixed with loadTag.
type loadReport struct {
	Phase                   string // "held" when every connection is open, "done" at the end
	Dial, Run, Close        time.Duration
	Messages, Bytes         uint64
	BaseHeap, BaseStack     uint64 // the client process's memory before dialling
	HeldHeap, HeldStack     uint64 // and with every connection open and idle
	Goroutines0, Goroutines int    // before dialling, and after closing
	Heap                    uint64 // after closing
}

const loadTag = "ecows-load: "

func (r loadReport) send() {
	b, _ := json.Marshal(r)
	fmt.Printf("%s%s\n", loadTag, b)
}

// serverFigures is what the server process measured.
type serverFigures struct {
	held       memSnapshot // with every connection open and idle
	goroutines int         // at the same moment
	peakHeap   uint64      // while echoing
	client     loadReport
}

// runLoadServer serves the load of a client process and reports whether it passed.
func runLoadServer(t *testing.T, conns int, duration time.Duration) (serverFigures, bool) {
	var fig serverFigures
	srv := startServer(t, echoFrames(30*time.Second, 0), nil)
	defer srv.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestLoad$", "-test.v=true", "-test.timeout="+(duration+10*time.Minute).String())
	cmd.Env = append(os.Environ(), "ECOWS_LOAD_SERVER="+srv.URL,
		"ECOWS_LOAD_CONNS="+strconv.Itoa(conns), "ECOWS_LOAD_DURATION="+duration.String(), "ECOWS_LOAD_HEAPPROFILE=")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setPdeathsig(cmd.SysProcAttr)
	output := new(wstest.Buffer) // everything the client process printed, for failures
	cmd.Stderr = output
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reports := make(chan loadReport, 2)
	go func() {
		defer close(reports)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, loadTag); ok {
				var r loadReport
				if json.Unmarshal([]byte(rest), &r) == nil {
					reports <- r
				}
				continue
			}
			io.WriteString(output, line+"\n")
		}
	}()
	fail := func(format string, args ...any) {
		stdin.Close()
		cmd.Process.Kill()
		for range reports {
		}
		cmd.Wait()
		t.Fatalf("%s\nclient process output:\n%s", fmt.Sprintf(format, args...), output.String())
	}
	next := func(within time.Duration) (loadReport, bool) {
		select {
		case r, ok := <-reports:
			return r, ok
		case <-time.After(within):
			return loadReport{}, false
		}
	}

	r, ok := next(5 * time.Minute)
	if !ok || r.Phase != "held" {
		fail("the client process did not open its connections")
	}
	srv.waitConns(t, conns, 30*time.Second)
	fig.held = liveMemory()
	fig.goroutines = runtime.NumGoroutine()
	if path := os.Getenv("ECOWS_LOAD_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}
	sampler := wstest.SampleHeap(t, 250*time.Millisecond)
	io.WriteString(stdin, "go\n")
	r, ok = next(duration + 5*time.Minute)
	fig.peakHeap = sampler.Stop()
	if !ok || r.Phase != "done" {
		fail("the client process failed")
	}
	for range reports {
	}
	if err := cmd.Wait(); err != nil {
		fail("client process: %v", err)
	}
	fig.client = r
	srv.waitConns(t, 0, 30*time.Second)
	return fig, true
}

// runLoadClients is the client process: it dials, reports, waits for the server process's
// go-ahead, echoes until the deadline, closes every connection and reports again.
func runLoadClients(t *testing.T, url string, conns int, duration time.Duration) {
	var r loadReport
	warmGoroutines(2*conns + 256)
	r.Goroutines0 = runtime.NumGoroutine()
	mem0 := liveMemory()
	r.BaseHeap, r.BaseStack = mem0.heap, mem0.stack

	// Dial with bounded concurrency: the listen backlog is finite, and a real fleet of
	// clients does not arrive in the same microsecond either.
	clients := make([]*loadClient, conns)
	start := time.Now()
	var dialErr atomic.Pointer[error]
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conns, 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= conns || dialErr.Load() != nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				c, _, err := handshake.Dial(ctx, url, &handshake.DialOptions{Proxy: noProxy})
				cancel()
				if err != nil {
					err = fmt.Errorf("dial %d: %w", i, err)
					dialErr.CompareAndSwap(nil, &err)
					return
				}
				clients[i] = newLoadClient(uint64(i), c)
			}
		}()
	}
	wg.Wait()
	r.Dial = time.Since(start)
	defer func() {
		for _, lc := range clients {
			if lc != nil {
				lc.c.CloseNow()
			}
		}
	}()
	if p := dialErr.Load(); p != nil {
		t.Fatalf("after %v: %v", r.Dial, *p)
	}
	held := liveMemory()
	r.HeldHeap, r.HeldStack = held.heap, held.stack
	r.Phase = "held"
	r.send()
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("waiting for the server process: %v", err)
	}

	// Echo until the deadline.
	start = time.Now()
	until := start.Add(duration)
	errs := make(chan error, conns)
	for _, lc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lc.run(until); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	r.Run = time.Since(start)
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 10 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed", failed, conns)
	}
	for _, lc := range clients {
		r.Messages += lc.got
		r.Bytes += lc.bytes
		if lc.got != lc.sent || lc.got == 0 {
			t.Fatalf("connection %d: %d messages sent, %d received", lc.id, lc.sent, lc.got)
		}
	}

	// Every connection ends with a close handshake that the server answers.
	start = time.Now()
	closeErrs := make(chan error, conns)
	for _, lc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lc.c.Close(frame.CloseNormal, "done"); err != nil {
				closeErrs <- fmt.Errorf("connection %d: Close: %w", lc.id, err)
			}
		}()
	}
	wg.Wait()
	r.Close = time.Since(start)
	close(closeErrs)
	for err := range closeErrs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	clients = nil
	var ok bool
	if r.Goroutines, ok = wstest.WaitGoroutines(r.Goroutines0, 10*time.Second); !ok {
		t.Fatalf("client process: goroutines: %d before, %d after", r.Goroutines0, r.Goroutines)
	}
	r.Heap = liveMemory().heap
	if slack := heapSlack(conns); r.Heap > r.BaseHeap+slack {
		t.Fatalf("client process: heap %s after the run, baseline %s: more than %s kept", mib(r.Heap), mib(r.BaseHeap), mib(slack))
	}
	r.Phase = "done"
	r.send()
}

// warmGoroutines runs n goroutines at once and lets them end.
func warmGoroutines(n int) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
	}
	close(release)
	wg.Wait()
}

// writeHeapProfile writes the live heap to path, to see where the memory of idle
// connections goes (go tool pprof -sample_index=inuse_space path).
func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap profile with every connection open written to %s", path)
}

const (
	maxBatch = 8
	hdrLen   = 16 + 16 + 8 // connection id, sequence number, CRC-32 of the body, in hex
)

// body is the source of message bodies: printable ASCII, so any slice is valid UTF-8.
var body = func() []byte {
	b := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte('!' + r.IntN(94))
	}
	return b
}()

// loadClient is one connection of the load test, run by one goroutine: it sends a batch,
// then reads the batch back and checks each message.
type loadClient struct {
	id          uint64
	c           *transport.Conn
	rng         *rand.Rand
	sent, got   uint64
	bytes       uint64
	batch       [maxBatch]expected
	msg, answer []byte
}

// expected is what a message sent must come back as.
type expected struct {
	seq uint64
	op  frame.Opcode
	n   int
	crc uint32
}

func newLoadClient(id uint64, c *transport.Conn) *loadClient {
	return &loadClient{id: id, c: c, rng: rand.New(rand.NewPCG(id, 42))}
}

func (lc *loadClient) run(until time.Time) error {
	// A lost message must fail the test, not hang it.
	ctx, cancel := context.WithDeadline(context.Background(), until.Add(30*time.Second))
	defer cancel()
	// At least one batch, even for a goroutine that a busy machine starts after the deadline:
	// every connection must carry messages for the test to mean anything.
	for first := true; first || time.Now().Before(until); first = false {
		n := 1 + lc.rng.IntN(maxBatch)
		for i := range n {
			if err := lc.send(&lc.batch[i], i == 0 && lc.rng.IntN(16) == 0); err != nil {
				return fmt.Errorf("connection %d: sending message %d: %w", lc.id, lc.sent, err)
			}
		}
		for i := range n {
			op, got, err := lc.c.ReadMessage(ctx, lc.answer[:0])
			lc.answer = got
			if err != nil {
				return fmt.Errorf("connection %d: reading message %d: %w", lc.id, lc.batch[i].seq, err)
			}
			if err := lc.check(lc.batch[i], op, got); err != nil {
				return fmt.Errorf("connection %d: message %d: %w", lc.id, lc.batch[i].seq, err)
			}
			lc.got++
			lc.bytes += uint64(len(got))
		}
	}
	return nil
}

// send sends the next message, large ones (4 KiB to 12 KiB) only as the first of a batch, so
// that a batch stays well within what the socket buffers hold while nobody reads.
func (lc *loadClient) send(e *expected, large bool) error {
	size := hdrLen + lc.rng.IntN(473)
	if large {
		size = 4<<10 + lc.rng.IntN(8<<10)
	}
	off := lc.rng.IntN(len(body) - size)
	b := body[off : off+size-hdrLen]
	*e = expected{seq: lc.sent, op: frame.OpBinary, n: size, crc: crc32.ChecksumIEEE(b)}
	if e.seq%2 == 0 {
		e.op = frame.OpText
	}
	m := appendHex(lc.msg[:0], lc.id, 16)
	m = appendHex(m, e.seq, 16)
	m = appendHex(m, uint64(e.crc), 8)
	m = append(m, b...)
	lc.msg = m
	lc.sent++
	if !large || e.seq%3 != 0 {
		_, err := lc.c.WriteMessage(context.Background(), e.op, m)
		return err
	}
	// In fragments: NextWriter sends a frame each time its buffer fills.
	w, err := lc.c.NextWriter(context.Background(), e.op)
	if err != nil {
		return err
	}
	for len(m) > 0 {
		k := min(len(m), 1000)
		if _, err := w.Write(m[:k]); err != nil {
			w.Close()
			return err
		}
		m = m[k:]
	}
	return w.Close()
}

// check compares a message received with what was sent: its type, length, connection,
// place in the sequence and checksum.
func (lc *loadClient) check(e expected, op frame.Opcode, m []byte) error {
	if len(m) != e.n || op != e.op {
		return fmt.Errorf("got %v of %d bytes, want %v of %d", op, len(m), e.op, e.n)
	}
	id, ok1 := parseHex(m[:16])
	seq, ok2 := parseHex(m[16:32])
	crc, ok3 := parseHex(m[32:hdrLen])
	switch {
	case !ok1 || !ok2 || !ok3:
		return errors.New("header garbled")
	case id != lc.id:
		return fmt.Errorf("message of connection %d", id)
	case seq != e.seq:
		return fmt.Errorf("got message %d: lost, repeated or out of order", seq)
	case uint32(crc) != e.crc || crc32.ChecksumIEEE(m[hdrLen:]) != e.crc:
		return errors.New("body corrupted (CRC-32 mismatch)")
	}
	return nil
}

const hexDigits = "0123456789abcdef"

func appendHex(b []byte, v uint64, width int) []byte {
	for i := width - 1; i >= 0; i-- {
		b = append(b, hexDigits[(v>>(4*uint(i)))&0xf])
	}
	return b
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
