package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(memClientEnv); spec != "" {
		os.Exit(memClientMain(spec)) // a memory test's client process, not a test run
	}
	code := m.Run()
	stopEcowsServe()
	os.Exit(code)
}

// testServer is an ecows server on 127.0.0.1 as an application builds it: a chi router, an
// ecows router mounted at /ws, and an http.Server with the timeouts of "ecows serve".
type testServer struct {
	URL  string // ws://127.0.0.1:port/ws
	Addr string
	WS   *router.Router

	http   *http.Server
	served chan struct{}
	once   sync.Once
}

// queryKey is where a connection served by startServer finds its upgrade request's query.
type queryKey struct{}

// startServer serves h at /ws with opts; it is shut down at the end of the test, or by Close.
func startServer(t testing.TB, h middleware.ConnHandler, opts *handshake.ServerOptions) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{Addr: ln.Addr().String(), WS: router.New(), served: make(chan struct{})}
	s.URL = "ws://" + s.Addr + "/ws"
	mux := chi.NewRouter()
	s.WS.Handle(mux.With(router.Keep(queryKey{}, func(r *http.Request) url.Values { return r.URL.Query() })), "/ws", h, opts)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.served)
		s.http.Serve(ln)
	}()
	t.Cleanup(s.Close)
	return s
}

// Close shuts the WebSocket connections down with 1001, then the HTTP server.
func (s *testServer) Close() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.WS.Shutdown(ctx)
		s.http.Close()
		<-s.served
	})
}

// waitConns waits until the router holds n connections.
func (s *testServer) waitConns(t testing.TB, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.WS.Len() != n {
		if time.Now().After(deadline) {
			t.Fatalf("router holds %d connections after %v, want %d", s.WS.Len(), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoFrames is the echo of "ecows serve": every data frame goes back as it came, behind the
// same middleware (Recover, Logger, MaxPayload, AutoPong with keepalive when interval > 0).
func echoFrames(interval, timeout time.Duration) middleware.ConnHandler {
	echo := middleware.HandlerFunc(func(_ context.Context, c *transport.Conn, f frame.Frame) error {
		if !f.Opcode.IsData() {
			return nil
		}
		if _, err := c.SendFrame(f.Fin, f.Opcode, f.Payload); err != nil && !errors.Is(err, transport.ErrClosed) {
			return err
		}
		return nil
	})
	nop := zerolog.Nop()
	return middleware.Frames(echo,
		middleware.Recover(&nop),
		middleware.Logger(&nop),
		middleware.MaxPayload(1<<20, 1<<20),
		middleware.AutoPong(&middleware.AutoPongOptions{Interval: interval, Timeout: timeout}))
}

// echoMessages echoes whole messages at the message layer, where the Conn answers pings.
func echoMessages() middleware.ConnHandler {
	return middleware.Messages(middleware.Bytes, middleware.HandlerFunc(
		func(_ context.Context, c *transport.Conn, m []byte) error {
			if _, err := c.WriteMessage(context.Background(), frame.OpBinary, m); err != nil && !errors.Is(err, transport.ErrClosed) {
				return err
			}
			return nil
		}))
}

// ended is how and when a server connection's handler returned.
type ended struct {
	err error
	at  time.Time
}

// recorder wraps a ConnHandler and reports the end of each connection it serves.
type recorder struct {
	h    middleware.ConnHandler
	ends chan ended
}

func record(h middleware.ConnHandler) *recorder {
	return &recorder{h: h, ends: make(chan ended, 256)}
}

func (r *recorder) ServeConn(ctx context.Context, c *transport.Conn) error {
	err := r.h.ServeConn(ctx, c)
	select {
	case r.ends <- ended{err, time.Now()}:
	default:
	}
	return err
}

// next waits for the next connection to end.
func (r *recorder) next(t testing.TB, within time.Duration) ended {
	t.Helper()
	select {
	case e := <-r.ends:
		return e
	case <-time.After(within):
		buf := make([]byte, 1<<20)
		t.Fatalf("no server connection ended within %v\n%s", within, buf[:runtime.Stack(buf, true)])
		return ended{}
	}
}

// readAll reads messages on c, dropping them, until a read fails, and sends that error on the
// channel it returns.
func readAll(c *transport.Conn) <-chan error {
	end := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(context.Background(), nil); err != nil {
				end <- err
				return
			}
		}
	}()
	return end
}

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// dialRaw runs the handshake with Dial and returns the TCP connection under the Conn, for
// tests that write hand-made bytes or misbehave at the socket level.
func dialRaw(t testing.TB, url string) (*transport.Conn, *net.TCPConn) {
	return dialRawBuf(t, url, 0)
}

// dialRawBuf is dialRaw with a receive buffer of rcvbuf bytes (0 for the default), for
// clients that stop reading: their window fills sooner.
func dialRawBuf(t testing.TB, url string, rcvbuf int) (*transport.Conn, *net.TCPConn) {
	t.Helper()
	var raw *net.TCPConn
	opts := &handshake.DialOptions{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if rcvbuf > 0 {
			d.Control = smallRcvbuf(rcvbuf)
		}
		nc, err := d.DialContext(ctx, network, addr)
		if err == nil {
			raw = nc.(*net.TCPConn)
		}
		return nc, err
	}}
	c := dialtest.Dial(t, url, opts)
	return c, raw
}

var clientKey = [4]byte{0x5a, 0x17, 0xc3, 0x81}

// clientFrame appends a frame masked as a client sends it.
func clientFrame(b []byte, fin bool, op frame.Opcode, payload []byte) []byte {
	return frame.AppendFrame(b, frame.Header{Fin: fin, Opcode: op, Masked: true, Key: clientKey}, payload)
}

// readClose reads frames from r until a close frame and returns its code.
func readClose(nc net.Conn, r *bufio.Reader, within time.Duration) (frame.CloseCode, error) {
	nc.SetReadDeadline(time.Now().Add(within))
	defer nc.SetReadDeadline(time.Time{})
	for {
		f, err := frame.ReadFrame(r, frame.MaxControlPayload)
		if errors.Is(err, frame.ErrTooBig) {
			// A data frame we do not care about: skip its payload.
			if _, err := io.CopyN(io.Discard, r, f.Length); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if f.Opcode == frame.OpClose {
			return f.CloseCode(), nil
		}
	}
}

// memSnapshot is the memory the Go runtime holds for live data after a collection.
type memSnapshot struct {
	heap, stack uint64 // HeapAlloc, StackInuse
}

func (m memSnapshot) total() uint64 { return m.heap + m.stack }

// liveMemory returns the live heap once collections have settled, and the stacks in use.
func liveMemory() memSnapshot {
	heap := wstest.LiveHeap()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heap: heap, stack: ms.StackInuse}
}

// upgradeRequest returns a valid opening handshake for host with the extra header lines.
func upgradeRequest(host string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// rawExchange sends req on a new TCP connection to addr and returns the response to it.
func rawExchange(t testing.TB, addr, req string) *http.Response {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	// Written on the side: a server that refuses a request may answer before reading it all.
	go io.WriteString(nc, req)
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp
}

// envInt and envDuration read the size of the load test from the environment.
func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 10s", name, v)
	}
	return d
}

// mib formats a byte count.
func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// signedDiff returns a-b as a signed number of bytes.
func signedDiff(a, b uint64) int64 { return int64(a) - int64(b) }
