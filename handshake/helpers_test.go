package handshake

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/echotest"
)

// fakeConn is a net.Conn over memory: reads come from in, writes go to out (or fail with
// writeErr). It lets tests and benchmarks drive Upgrade without a network.
type fakeConn struct {
	in       io.Reader
	out      bytes.Buffer
	writeErr error
	closed   bool
}

var fakeAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}

func (c *fakeConn) Read(p []byte) (int, error) {
	if c.in == nil {
		return 0, io.EOF
	}
	return c.in.Read(p)
}

func (c *fakeConn) Write(p []byte) (int, error) {
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	return c.out.Write(p)
}

func (c *fakeConn) Close() error                     { c.closed = true; return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return fakeAddr }
func (c *fakeConn) RemoteAddr() net.Addr             { return fakeAddr }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// hijackWriter is an http.ResponseWriter and http.Hijacker over a fakeConn, recording what a
// handler did with it.
type hijackWriter struct {
	header    http.Header
	status    int
	body      bytes.Buffer
	conn      *fakeConn
	brw       *bufio.ReadWriter
	hijackErr error
	hijacked  bool
}

func newHijackWriter(clientBytes string) *hijackWriter {
	c := &fakeConn{in: strings.NewReader("")}
	br := bufio.NewReader(strings.NewReader(clientBytes))
	if clientBytes != "" {
		br.Peek(len(clientBytes)) // as net/http leaves bytes read past the request
	}
	return &hijackWriter{header: http.Header{}, conn: c, brw: bufio.NewReadWriter(br, bufio.NewWriter(c))}
}

func (w *hijackWriter) Header() http.Header { return w.header }
func (w *hijackWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
func (w *hijackWriter) WriteHeader(status int) { w.status = status }
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijackErr != nil {
		return nil, nil, w.hijackErr
	}
	w.hijacked = true
	return w.conn, w.brw, nil
}

// newRequestForTest returns a valid upgrade request for http://example.com/ws.
func newRequestForTest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	r.Header.Set("Sec-WebSocket-Version", "13")
	return r
}

// quietServer starts an httptest server (TLS when tls is set) whose error log is discarded,
// so refused TLS handshakes in tests do not clutter the output.
func quietServer(t testing.TB, h http.Handler, tls bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// echoHandler upgrades every request with opts and echoes its messages.
func echoHandler(opts *ServerOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := Upgrade(w, r, opts); err == nil {
			echotest.Echo(context.Background(), c)
		}
	})
}

// wsURL returns the ws:// or wss:// URL of srv.
func wsURL(srv *httptest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") }

// sendRaw dials srv and writes req to it as it is, for requests a client would not send. The
// connection it returns has a 5 s deadline for all that follows and is closed when the test
// ends.
func sendRaw(t testing.TB, srv *httptest.Server, req string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	return nc
}

// listen returns a listener on 127.0.0.1 that serves each accepted connection with serve in
// its own goroutine. At the end of the test it closes the listener and every connection and
// waits for the goroutines.
func listen(t testing.TB, serve func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln
}

// cannedServer answers every handshake request with the bytes answer returns for it, then
// waits for the client to go away; an empty answer closes the connection at once.
func cannedServer(t testing.TB, answer func(r *http.Request) string) string {
	ln := listen(t, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		a := answer(r)
		if a == "" {
			return
		}
		if _, err := io.WriteString(c, a); err != nil {
			return
		}
		io.Copy(io.Discard, c)
	})
	return "ws://" + ln.Addr().String()
}

// acceptFor returns the Sec-WebSocket-Accept value for r's key, computed apart from the
// code under test.
func acceptFor(r *http.Request) string {
	return wstest.AcceptKey(r.Header.Get("Sec-WebSocket-Key"))
}

// switching returns a 101 answer to r with the right accept key and the extra header lines.
func switching(r *http.Request, extra string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptFor(r) + "\r\n" + extra + "\r\n"
}
