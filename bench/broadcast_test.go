//go:build unix

package bench

import (
	"bufio"
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
// library allocates per broadcast whatever the audience.
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
}

var broadcastLibs = []broadcastLib{
	{"ecows-hub", startEcowsHub},
	{"gorilla-prepared", startGorillaPrepared},
	{"gws-broadcaster", startGWSBroadcaster},
	{"melody", startMelody},
}

func startEcowsHub() (http.Handler, func([]byte), func() int, func()) {
	ws := router.New()
	h, err := hub.New(nil)
	if err != nil {
		panic(err)
	}
	ws.CloseOnShutdown(h)
	room := func(context.Context, *transport.Conn) []string { return []string{"bench"} }
	discard := middleware.HandlerFunc[frame.Frame](func(context.Context, *transport.Conn, frame.Frame) error { return nil })
	handler := ws.Handler(middleware.Frames(discard, router.Rooms(h, room)),
		&handshake.ServerOptions{Options: transport.Options{CloseTimeout: 100 * time.Millisecond}})
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

func startGWSBroadcaster() (http.Handler, func([]byte), func() int, func()) {
	var mu sync.Mutex
	var conns []*gws.Conn
	up := gws.NewUpgrader(gwsDiscard{}, &gws.ServerOption{})
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
	sent      int64      // broadcasts so far
	targets   io.Writer  // to the child: a count of frames to report
	reached   chan error // from the child: each count reached
	child     *exec.Cmd
}

// Environment of the child process that runs the clients.
const (
	fleetAddr    = "ECOWS_BENCH_FLEET_ADDR"
	fleetClients = "ECOWS_BENCH_FLEET_CLIENTS"
)

func startFleet(b *testing.B, lib broadcastLib, n int) *fleet {
	handler, broadcast, count, stop := lib.start()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	f := &fleet{n: n, broadcast: broadcast, reached: make(chan error, 1)}

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
	f.child.Env = append(os.Environ(), fleetAddr+"="+ln.Addr().String(), fleetClients+"="+strconv.Itoa(n))
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
			if line := sc.Text(); line != "ok" {
				f.reached <- fmt.Errorf("client fleet: %s", line)
			} else {
				f.reached <- nil
			}
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
	case err, ok := <-f.reached:
		if !ok {
			return errors.New("client fleet: gone")
		}
		return err
	case <-time.After(d):
		return fmt.Errorf("client fleet: no report in %v", d)
	}
}

// run broadcasts b.N messages of size bytes, broadcastWindow at a time, each window waited
// for until every client has all of it.
func (f *fleet) run(b *testing.B, size int) {
	payload := make([]byte, size)
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
	b.ReportMetric(float64(b.N)*float64(f.n)/elapsed.Seconds(), "msgs/s")
}

// TestBroadcastClients is the client side of BenchmarkBroadcast, run in a child process:
// it connects the clients, reports "ok" on fd 3, then for each count read from fd 4 reports
// "ok" once the clients have received that many data frames in all. It ends, closing the
// clients, when fd 4 closes. Run on its own, it skips.
func TestBroadcastClients(t *testing.T) {
	addr, n := os.Getenv(fleetAddr), os.Getenv(fleetClients)
	if addr == "" {
		t.Skip("the client side of BenchmarkBroadcast")
	}
	clients, err := strconv.Atoi(n)
	if err != nil {
		t.Fatal(err)
	}
	reports, targets := os.NewFile(3, "reports"), os.NewFile(4, "targets")
	var delivered, target, signalled atomic.Int64
	target.Store(math.MaxInt64)
	var mu sync.Mutex
	report := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(reports, line)
	}
	// reach reports the current target once the frames delivered have reached it.
	reach := func() {
		t := target.Load()
		for delivered.Load() >= t {
			s := signalled.Load()
			if s >= t {
				return
			}
			if signalled.CompareAndSwap(s, t) {
				report("ok")
				return
			}
		}
	}
	conns := make([]net.Conn, 0, clients)
	var readers sync.WaitGroup
	for range clients {
		c, br, err := dialRaw(addr)
		if err != nil {
			report(err.Error())
			t.Fatal(err)
		}
		conns = append(conns, c)
		readers.Add(1)
		go func() {
			defer readers.Done()
			readFrames(br, func() {
				if delivered.Add(1) >= target.Load() {
					reach()
				}
			})
		}()
	}
	report("ok")
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

// readFrames calls frame for each data frame the server sends, until the connection ends.
func readFrames(br *bufio.Reader, frame func()) {
	for {
		hdr, err := br.Peek(2)
		if err != nil {
			return
		}
		op, n, hl := hdr[0]&0x0f, int(hdr[1]&0x7f), 2
		switch n {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if hl > 2 {
			if hdr, err = br.Peek(hl); err != nil {
				return
			}
			if hl == 4 {
				n = int(binary.BigEndian.Uint16(hdr[2:]))
			} else {
				n = int(binary.BigEndian.Uint64(hdr[2:]))
			}
		}
		if _, err := br.Discard(hl + n); err != nil {
			return
		}
		if op == 1 || op == 2 {
			frame()
		}
	}
}

// dialRaw opens a WebSocket client connection by hand: the reader is all a client here does.
func dialRaw(addr string) (net.Conn, *bufio.Reader, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	br := bufio.NewReaderSize(c, 4096)
	for first := true; err == nil; first = false {
		var line string
		if line, err = br.ReadString('\n'); err != nil {
			break
		}
		if first && !strings.Contains(line, " 101 ") {
			err = fmt.Errorf("handshake refused: %q", line)
		}
		if line == "\r\n" {
			return c, br, nil
		}
	}
	c.Close()
	return nil, nil, err
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
