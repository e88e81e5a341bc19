//go:build unix

package bench

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"
	"github.com/olahol/melody"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

// BenchmarkBroadcast sends one message to every one of n clients connected over loopback
// TCP to one server, with each library's own broadcast: ecows's hub (encoded once, a queue
// and a writer per connection), gorilla's PreparedMessage written in a loop, gws's
// Broadcaster, and melody's Broadcast. The clients are the same raw readers for all, which
// count whole data frames, and run in a child process (the test binary again, as
// TestBroadcastClients): 10,000 clients and their 10,000 server ends would not fit one
// process's open-file limit where it cannot be raised, and the server's allocations are
// measured alone. An op is one broadcast; msgs/s counts the messages the clients received.
// The broadcaster keeps at most broadcastWindow broadcasts in flight, below every library's
// queue, so that nobody drops or blocks; allocs/op, flat across client counts, is what a
// library allocates per broadcast whatever the audience. The payload is the start of a 1 KiB
// JSON document, sent as a binary message.
//
// The -deflate variants (issue 20) are the same with permessage-deflate negotiated: the
// clients offer it without context takeover (both no_context_takeover parameters) or, for
// -deflate-takeover, with it (plain permessage-deflate), and the servers are ecows's hub with
// Options.Compression (ContextTakeover false or true) and gws's Broadcaster with
// PermessageDeflate (2^15 windows). Their clients read every payload, inflate each compressed
// one (RSV1) with the window the agreement calls for, and fail the run on a message that is
// not the one sent. Every row reports wireB/msg, the bytes each member received per message
// (frame headers included), and compressed/msg, the share of messages that came compressed:
// a library may send a message uncompressed (below its threshold: 512 bytes without takeover
// in both; with takeover 128 in ecows, none in gws).
func BenchmarkBroadcast(b *testing.B) {
	limit := raiseFileLimit()
	for _, lib := range broadcastLibs {
		b.Run(lib.name, func(b *testing.B) {
			for _, n := range []int{1000, 10000} {
				b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
					if n > 1000 && testing.Short() {
						b.Skip("10,000 clients: not under -short")
					}
					if need := uint64(n + 1000); limit < need {
						b.Skipf("open-file limit %d, %d needed", limit, need)
					}
					f := startFleet(b, lib, n)
					for _, size := range []int{64, 1024} {
						b.Run(sizeName(size), func(b *testing.B) { f.run(b, size) })
					}
				})
			}
		})
	}
}

// broadcastWindow bounds the broadcasts in flight.
const broadcastWindow = 32

// broadcastLib is one library's server side: an HTTP handler that upgrades and registers
// each client, the broadcast, the number of clients registered, and the teardown.
type broadcastLib struct {
	name  string
	start func() (handler http.Handler, broadcast func(payload []byte), count func() int, stop func())
	// offer is the Sec-WebSocket-Extensions the clients send ("": none).
	offer string
}

// The clients' permessage-deflate offers, without and with context takeover.
const (
	offerDeflate         = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	offerDeflateTakeover = "permessage-deflate"
)

var broadcastLibs = []broadcastLib{
	{"ecows-hub", startEcowsHub(nil), ""},
	{"gorilla-prepared", startGorillaPrepared, ""},
	{"gws-broadcaster", startGWSBroadcaster(gws.PermessageDeflate{}), ""},
	{"melody", startMelody, ""},
	{"ecows-hub-deflate", startEcowsHub(&transport.CompressionOptions{}), offerDeflate},
	{"ecows-hub-deflate-takeover", startEcowsHub(&transport.CompressionOptions{ContextTakeover: true}), offerDeflateTakeover},
	{"gws-broadcaster-deflate", startGWSBroadcaster(gwsDeflate(false)), offerDeflate},
	{"gws-broadcaster-deflate-takeover", startGWSBroadcaster(gwsDeflate(true)), offerDeflateTakeover},
}

// broadcastDoc is what a broadcast of n bytes sends: its first n bytes.
var broadcastDoc = jsonDocs(1)[0]

// startEcowsHub serves the hub with compression c (nil: off).
func startEcowsHub(c *transport.CompressionOptions) func() (http.Handler, func([]byte), func() int, func()) {
	return func() (http.Handler, func([]byte), func() int, func()) {
		return ecowsHub(c)
	}
}

func ecowsHub(c *transport.CompressionOptions) (http.Handler, func([]byte), func() int, func()) {
	ws := router.New()
	h, err := hub.New(nil)
	if err != nil {
		panic(err)
	}
	ws.CloseOnShutdown(h)
	room := func(context.Context, *transport.Conn) []string { return []string{"bench"} }
	discard := middleware.HandlerFunc[frame.Frame](func(context.Context, *transport.Conn, frame.Frame) error { return nil })
	handler := ws.Handler(middleware.Frames(discard, router.Rooms(h, room)),
		&handshake.ServerOptions{Options: transport.Options{CloseTimeout: 100 * time.Millisecond, Compression: c}})
	return handler,
		func(p []byte) { h.Broadcast("bench", frame.OpBinary, p) },
		func() int { return h.Count("bench") },
		func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ws.Shutdown(ctx)
			h.Close()
		}
}

func startGorillaPrepared() (http.Handler, func([]byte), func() int, func()) {
	var mu sync.Mutex
	var conns []*websocket.Conn
	var up websocket.Upgrader
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		go func() { // read, so that a close from the client ends the connection
			for {
				if _, _, err := c.NextReader(); err != nil {
					c.Close()
					return
				}
			}
		}()
	})
	return handler,
		func(p []byte) {
			pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, p)
			if err != nil {
				panic(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.WritePreparedMessage(pm)
			}
		},
		func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(conns)
		},
		func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		}
}

type gwsDiscard struct{ gws.BuiltinEventHandler }

// startGWSBroadcaster serves gws with compression pd (the zero value: off).
func startGWSBroadcaster(pd gws.PermessageDeflate) func() (http.Handler, func([]byte), func() int, func()) {
	return func() (http.Handler, func([]byte), func() int, func()) {
		return gwsBroadcaster(pd)
	}
}

func gwsBroadcaster(pd gws.PermessageDeflate) (http.Handler, func([]byte), func() int, func()) {
	var mu sync.Mutex
	var conns []*gws.Conn
	up := gws.NewUpgrader(gwsDiscard{}, &gws.ServerOption{PermessageDeflate: pd})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		go c.ReadLoop()
	})
	return handler,
		func(p []byte) {
			bc := gws.NewBroadcaster(gws.OpcodeBinary, p)
			mu.Lock()
			for _, c := range conns {
				bc.Broadcast(c)
			}
			mu.Unlock()
			bc.Close()
		},
		func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(conns)
		},
		func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.NetConn().Close()
			}
		}
}

func startMelody() (http.Handler, func([]byte), func() int, func()) {
	m := melody.New()
	m.Config.MessageBufferSize = 256
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.HandleRequest(w, r) })
	return handler,
		func(p []byte) { m.BroadcastBinary(p) },
		m.Len,
		func() { m.Close() }
}

// fleet is a server of one library, in this process, with n raw clients connected to it
// from a child process.
type fleet struct {
	n         int
	broadcast func([]byte)
	sent      int64            // broadcasts so far
	targets   io.Writer        // to the child: a count of frames to report
	reached   chan fleetReport // from the child: each count reached
	last      fleetReport      // the latest report
	child     *exec.Cmd
}

// fleetReport is one of the child's reports: a count reached, with the totals so far of the
// bytes the clients received in data frames (headers included) and of compressed frames.
type fleetReport struct {
	err              error
	wire, compressed int64
}

// Environment of the child process that runs the clients.
const (
	fleetAddr    = "ECOWS_BENCH_FLEET_ADDR"
	fleetClients = "ECOWS_BENCH_FLEET_CLIENTS"
	fleetOffer   = "ECOWS_BENCH_FLEET_OFFER"
)

func startFleet(b *testing.B, lib broadcastLib, n int) *fleet {
	handler, broadcast, count, stop := lib.start()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	f := &fleet{n: n, broadcast: broadcast, reached: make(chan fleetReport, 1)}

	// fd 3 of the child: reports to us; fd 4: targets from us.
	reports, childReports, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	childTargets, targets, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	f.targets = targets
	f.child = exec.Command(os.Args[0], "-test.run=^TestBroadcastClients$", "-test.count=1")
	f.child.Env = append(os.Environ(), fleetAddr+"="+ln.Addr().String(), fleetClients+"="+strconv.Itoa(n), fleetOffer+"="+lib.offer)
	f.child.Stderr = os.Stderr // its stdout says PASS
	f.child.ExtraFiles = []*os.File{childReports, childTargets}
	if err := f.child.Start(); err != nil {
		b.Fatal(err)
	}
	childReports.Close()
	childTargets.Close()
	b.Cleanup(func() {
		targets.Close() // the child closes its clients and exits
		f.child.Wait()
		reports.Close()
		stop()
		srv.Close()
	})
	go func() {
		sc := bufio.NewScanner(reports)
		for sc.Scan() {
			var r fleetReport
			if _, err := fmt.Sscanf(sc.Text(), "ok %d %d", &r.wire, &r.compressed); err != nil {
				r.err = fmt.Errorf("client fleet: %s", sc.Text())
			}
			f.reached <- r
		}
		close(f.reached)
	}()
	if err := f.wait(time.Minute); err != nil { // "ok" once every client is connected
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d clients registered", lib.name, count(), n)
		}
		time.Sleep(time.Millisecond)
	}
	return f
}

// wait waits for the child's next report.
func (f *fleet) wait(d time.Duration) error {
	select {
	case r, ok := <-f.reached:
		if !ok {
			return errors.New("client fleet: gone")
		}
		if r.err == nil {
			f.last = r
		}
		return r.err
	case <-time.After(d):
		return fmt.Errorf("client fleet: no report in %v", d)
	}
}

// run broadcasts b.N messages of size bytes, broadcastWindow at a time, each window waited
// for until every client has all of it.
func (f *fleet) run(b *testing.B, size int) {
	payload := broadcastDoc[:size]
	from := f.last
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; {
		w := min(broadcastWindow, b.N-done)
		done += w
		f.sent += int64(w)
		fmt.Fprintln(f.targets, f.sent*int64(f.n))
		for range w {
			f.broadcast(payload)
		}
		if err := f.wait(time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	msgs := float64(b.N) * float64(f.n)
	b.ReportMetric(msgs/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(f.last.wire-from.wire)/msgs, "wireB/msg")
	b.ReportMetric(float64(f.last.compressed-from.compressed)/msgs, "compressed/msg")
}

// TestBroadcastClients is the client side of BenchmarkBroadcast, run in a child process:
// it connects the clients, reports "ok 0 0" on fd 3, then for each count read from fd 4
// reports "ok WIRE COMPRESSED" once the clients have received that many data frames in all,
// with the totals so far of data-frame bytes and of compressed frames; any other line is an
// error. It ends, closing the clients, when fd 4 closes. Run on its own, it skips.
func TestBroadcastClients(t *testing.T) {
	addr, n, offer := os.Getenv(fleetAddr), os.Getenv(fleetClients), os.Getenv(fleetOffer)
	if addr == "" {
		t.Skip("the client side of BenchmarkBroadcast")
	}
	clients, err := strconv.Atoi(n)
	if err != nil {
		t.Fatal(err)
	}
	reports, targets := os.NewFile(3, "reports"), os.NewFile(4, "targets")
	var delivered, target, signalled, wire, compressed atomic.Int64
	target.Store(math.MaxInt64)
	var mu sync.Mutex
	report := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(reports, line)
	}
	// reach reports the current target once the frames delivered have reached it. Each
	// reader counts a frame's bytes before the frame, and no frame arrives past the target
	// before the next one, so the totals it reports are exact.
	reach := func() {
		t := target.Load()
		for delivered.Load() >= t {
			s := signalled.Load()
			if s >= t {
				return
			}
			if signalled.CompareAndSwap(s, t) {
				report(fmt.Sprintf("ok %d %d", wire.Load(), compressed.Load()))
				return
			}
		}
	}
	conns := make([]net.Conn, 0, clients)
	var readers sync.WaitGroup
	for range clients {
		c, br, answer, err := dialRaw(addr, offer)
		if err == nil && offer != "" && !strings.Contains(answer, "permessage-deflate") {
			err = fmt.Errorf("permessage-deflate offered, answer %q", answer)
		}
		if err != nil {
			report(err.Error())
			t.Fatal(err)
		}
		conns = append(conns, c)
		var z *memberInflater
		if offer != "" {
			p, _ := deflateAnswer(answer)
			_, reset := p["server_no_context_takeover"]
			z = &memberInflater{keep: !reset}
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			err := readFrames(br, z, func(n int, z bool) {
				wire.Add(int64(n))
				if z {
					compressed.Add(1)
				}
				if delivered.Add(1) >= target.Load() {
					reach()
				}
			})
			if err != nil {
				report(err.Error())
			}
		}()
	}
	report("ok 0 0")
	sc := bufio.NewScanner(targets)
	for sc.Scan() {
		v, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		target.Store(v)
		reach()
	}
	for _, c := range conns {
		c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT: the next fleet needs the ports
		c.Close()
	}
	readers.Wait()
}

// readFrames calls frame for each data frame the server sends, with its size on the wire and
// whether it came compressed (RSV1), until the connection ends. With z, it first checks the
// frame's payload (memberInflater.check) and returns the error of one that fails.
func readFrames(br *bufio.Reader, z *memberInflater, frame func(wire int, compressed bool)) error {
	for {
		hdr, err := br.Peek(2)
		if err != nil {
			return nil
		}
		fin, rsv1, op, n, hl := hdr[0]&0x80 != 0, hdr[0]&0x40 != 0, hdr[0]&0x0f, int(hdr[1]&0x7f), 2
		switch n {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if hl > 2 {
			if hdr, err = br.Peek(hl); err != nil {
				return nil
			}
			if hl == 4 {
				n = int(binary.BigEndian.Uint16(hdr[2:]))
			} else {
				n = int(binary.BigEndian.Uint64(hdr[2:]))
			}
		}
		data := op == 1 || op == 2
		if z == nil || !data {
			if _, err := br.Discard(hl + n); err != nil {
				return nil
			}
		} else {
			br.Discard(hl)
			z.payload = slices.Grow(z.payload[:0], n)[:n]
			if _, err := io.ReadFull(br, z.payload); err != nil {
				return nil
			}
			if err := z.check(fin, rsv1); err != nil {
				return err
			}
		}
		if data {
			frame(hl+n, rsv1)
		}
	}
}

// memberInflater reads one client's messages under permessage-deflate.
type memberInflater struct {
	keep    bool   // the server keeps its context: inflate with the window of earlier messages
	window  []byte // the last 32 KiB inflated, when keep
	payload []byte // the frame's payload
	out     bytes.Buffer
}

// inflaters are the clients' decompressors, one per message in flight.
var inflaters = sync.Pool{New: func() any { return stdflate.NewReader(nil) }}

// check fails unless the frame's payload is a whole message that is, once inflated when
// compressed, a prefix of broadcastDoc: what BenchmarkBroadcast sends.
func (m *memberInflater) check(fin, compressed bool) error {
	got := m.payload
	if !fin {
		return errors.New("a fragmented message: the benchmark's messages fit one frame")
	}
	if compressed {
		zr := inflaters.Get().(io.ReadCloser)
		defer inflaters.Put(zr)
		zr.(stdflate.Resetter).Reset(io.MultiReader(bytes.NewReader(got), bytes.NewReader(deflateEnd)), m.window)
		m.out.Reset()
		if _, err := m.out.ReadFrom(zr); err != nil {
			return fmt.Errorf("inflating a %d-byte message: %w", len(got), err)
		}
		got = m.out.Bytes()
		if m.keep {
			m.window = append(m.window, got...)
			if over := len(m.window) - 32<<10; over > 0 {
				m.window = append(m.window[:0], m.window[over:]...)
			}
		}
	}
	if len(got) == 0 || len(got) > len(broadcastDoc) || !bytes.Equal(got, broadcastDoc[:len(got)]) {
		return fmt.Errorf("a %d-byte message (compressed %v) that was not broadcast", len(got), compressed)
	}
	return nil
}

// dialRaw opens a WebSocket client connection by hand, offering the extensions in offer
// (none when empty), and returns the server's Sec-WebSocket-Extensions answer: the reader is
// all a client here does.
func dialRaw(addr, offer string) (net.Conn, *bufio.Reader, string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, "", err
	}
	ext := ""
	if offer != "" {
		ext = "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + ext + "\r\n"))
	br := bufio.NewReaderSize(c, 4096)
	var answer []string
	for first := true; err == nil; first = false {
		var line string
		if line, err = br.ReadString('\n'); err != nil {
			break
		}
		if first && !strings.Contains(line, " 101 ") {
			err = fmt.Errorf("handshake refused: %q", line)
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Extensions") {
			answer = append(answer, strings.TrimSpace(v))
		}
		if line == "\r\n" {
			return c, br, strings.Join(answer, ", "), nil
		}
	}
	c.Close()
	return nil, nil, "", err
}

// raiseFileLimit lifts the open-file limit as far as it may go (with CAP_SYS_RESOURCE past
// the hard limit) and returns it: each process holds one end of 10,000 connections. The
// child process inherits it.
func raiseFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	const want = 1 << 16
	if l.Cur < want {
		raised := syscall.Rlimit{Cur: want, Max: max(l.Max, want)}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) != nil {
			raised = syscall.Rlimit{Cur: l.Max, Max: l.Max}
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised)
		}
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// TestMemberInflater checks the broadcast clients' reading of compressed messages: with the
// server's context kept from one message to the next, a message that refers to earlier ones
// inflates only with their window, and a message that was not broadcast fails.
func TestMemberInflater(t *testing.T) {
	// messages compresses msgs in turn with one compressor, which keeps its window between
	// them unless reset, and returns each one's payload as permessage-deflate sends it.
	messages := func(reset bool, msgs ...[]byte) [][]byte {
		var z bytes.Buffer
		zw, _ := stdflate.NewWriter(&z, stdflate.BestSpeed)
		var out [][]byte
		for _, m := range msgs {
			if reset {
				zw.Reset(&z)
			}
			zw.Write(m)
			zw.Flush()
			out = append(out, bytes.Clone(bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})))
			z.Reset()
		}
		return out
	}
	doc, other := broadcastDoc, bytes.Repeat([]byte("x"), 64)
	var docs [][]byte // 48 KiB, past the 32 KiB window the member keeps
	for i := range 48 {
		docs = append(docs, doc[:1024-i%4*200])
	}
	for _, tc := range []struct {
		name    string
		keep    bool
		frames  [][]byte
		wantErr bool // on the last frame
	}{
		{"no takeover", false, messages(true, doc, doc[:64], doc), false},
		{"takeover", true, messages(false, docs...), false},
		{"takeover read without the window", false, messages(false, doc, doc), true},
		{"not broadcast", false, messages(true, doc, other), true},
		{"not broadcast, uncompressed", false, [][]byte{other}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memberInflater{keep: tc.keep}
			for i, f := range tc.frames {
				m.payload = f
				err := m.check(true, !bytes.Equal(f, other))
				if last := i == len(tc.frames)-1; err != nil && !(last && tc.wantErr) {
					t.Fatalf("message %d: %v", i, err)
				} else if last && tc.wantErr && err == nil {
					t.Fatalf("message %d: no error", i)
				}
			}
			if len(m.window) > 32<<10 {
				t.Fatalf("window of %d bytes", len(m.window))
			}
		})
	}
	m := &memberInflater{payload: doc}
	if err := m.check(false, false); err == nil {
		t.Fatal("a fragment passed")
	}
}
