package bench

import (
	"bufio"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/bench/internal/load"
)

// BenchmarkEcho128 measures each echo server's cost per message in memory, with no network:
// the server's own handler (servers_*.go) is run over a stream that replays masked 128-byte
// binary frames, as a client sends them, b.N times and then ends, and discards what the server
// writes. One op is one frame read, unmasked and written back (132 bytes out), so ns/op,
// B/op and allocs/op are each library's per-message cost in the shape it is used in. The
// upgrade and the connection's setup are excluded: the timer and the allocation counts restart
// at the server's first read of the stream.
func BenchmarkEcho128(b *testing.B) {
	const size = 128
	for _, s := range Servers() {
		b.Run(s.Lib+"/"+s.Shape, func(b *testing.B) {
			h := s.Handler()
			conn := newEchoStream(b, size, b.N)
			w := &echoHijacker{header: http.Header{}, conn: conn}
			w.brw = bufio.NewReadWriter(bufio.NewReaderSize(conn, 4096), bufio.NewWriterSize(conn, 4096))
			b.SetBytes(size)
			b.ReportAllocs()
			h.ServeHTTP(w, echoRequest())
			select {
			case <-conn.closed:
			case <-time.After(time.Minute):
				b.Fatal("the server did not end the connection after the stream ended")
			}
			b.StopTimer()
			if want := int64(b.N) * (4 + size); conn.written < want {
				b.Fatalf("server wrote %d bytes after the upgrade, want at least %d (%d echoes)", conn.written, want, b.N)
			}
		})
	}
}

// echoRequest is a client's opening handshake as net/http parses it.
func echoRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://bench.example/ws", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	r.Header.Set("Sec-WebSocket-Version", "13")
	return r
}

// echoStream is a net.Conn that reads n masked frames of the same size from a replayed buffer
// and then io.EOF, and counts and discards writes. Its first read restarts the benchmark's
// timer, so the upgrade is not counted.
type echoStream struct {
	b         *testing.B
	data      []byte
	off       int
	remaining int64
	started   bool
	written   int64
	closeOnce sync.Once
	closed    chan struct{}
}

func newEchoStream(b *testing.B, size, n int) *echoStream {
	payload := make([]byte, size)
	rand.Read(payload)
	var data []byte
	for len(data) < 64<<10 {
		data = load.AppendFrame(data, 0x2, [4]byte{0x37, 0xfa, 0x21, 0x3d}, payload)
	}
	frameLen := len(load.AppendFrame(nil, 0x2, [4]byte{}, payload))
	return &echoStream{b: b, data: data, remaining: int64(n) * int64(frameLen), closed: make(chan struct{})}
}

func (s *echoStream) Read(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.written = 0
		s.b.ResetTimer()
	}
	if s.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.remaining {
		p = p[:s.remaining]
	}
	n := copy(p, s.data[s.off:])
	s.off = (s.off + n) % len(s.data)
	s.remaining -= int64(n)
	return n, nil
}

func (s *echoStream) Write(p []byte) (int, error) {
	s.written += int64(len(p))
	return len(p), nil
}

func (s *echoStream) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

var echoAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}

func (s *echoStream) LocalAddr() net.Addr              { return echoAddr }
func (s *echoStream) RemoteAddr() net.Addr             { return echoAddr }
func (s *echoStream) SetDeadline(time.Time) error      { return nil }
func (s *echoStream) SetReadDeadline(time.Time) error  { return nil }
func (s *echoStream) SetWriteDeadline(time.Time) error { return nil }

// echoHijacker is an http.ResponseWriter whose Hijack hands over an echoStream with buffers
// around it, as net/http would.
type echoHijacker struct {
	header http.Header
	conn   *echoStream
	brw    *bufio.ReadWriter
}

func (w *echoHijacker) Header() http.Header         { return w.header }
func (w *echoHijacker) Write(p []byte) (int, error) { return len(p), nil }
func (w *echoHijacker) WriteHeader(int)             {}
func (w *echoHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, w.brw, nil
}

// TestEchoServers runs every echo server over loopback TCP with the load client in checking
// mode, in each scenario's shape but for a fraction of a second: it proves that the servers
// echo byte for byte and that the harness works. (CI runs only the benchmarks, once; run this
// with `go test ./...` in bench/.)
func TestEchoServers(t *testing.T) {
	for _, s := range Servers() {
		t.Run(s.Lib+"/"+s.Shape, func(t *testing.T) {
			srv := httptest.NewServer(Mux(s))
			defer srv.Close()
			addr := srv.Listener.Addr().String()
			for _, sc := range load.Scenarios {
				conns := min(sc.Conns, 50)
				r, err := load.Run(load.Config{Addr: addr, Conns: conns, Size: sc.Size, Window: sc.Window,
					Warmup: 20 * time.Millisecond, Duration: 80 * time.Millisecond, Check: true})
				if err != nil {
					t.Fatalf("%s: %v", sc.Name, err)
				}
				if r.Messages == 0 {
					t.Fatalf("%s: no message echoed", sc.Name)
				}
			}
		})
	}
}
