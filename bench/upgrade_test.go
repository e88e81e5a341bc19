package bench

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ecows/ecows/handshake"
	"github.com/gorilla/websocket"
)

// BenchmarkUpgrade measures each library's server handshake on the same request and the same
// in-memory hijackable ResponseWriter, so neither TCP nor net/http's own hijack is counted.
// Both return a usable connection with the default buffer sizes.
func BenchmarkUpgrade(b *testing.B) {
	b.Run("ecows", func(b *testing.B) {
		benchUpgrade(b, func(w http.ResponseWriter, r *http.Request) error {
			_, err := handshake.Upgrade(w, r, nil)
			return err
		})
	})
	b.Run("gorilla", func(b *testing.B) {
		var u websocket.Upgrader
		benchUpgrade(b, func(w http.ResponseWriter, r *http.Request) error {
			_, err := u.Upgrade(w, r, nil)
			return err
		})
	})
}

func benchUpgrade(b *testing.B, upgrade func(http.ResponseWriter, *http.Request) error) {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	r.Header.Set("Sec-WebSocket-Version", "13")
	// net/http hands over 4 KiB buffers on hijack; a library may reuse them.
	w := &hijackWriter{header: http.Header{}}
	w.brw = bufio.NewReadWriter(bufio.NewReaderSize(w.conn, 4096), bufio.NewWriterSize(w.conn, 4096))
	b.ReportAllocs()
	for b.Loop() {
		w.brw.Writer.Reset(w.conn)
		if err := upgrade(w, r); err != nil {
			b.Fatal(err)
		}
	}
}

// hijackWriter is an http.ResponseWriter whose Hijack returns a discarding connection and
// prepared buffers, as net/http's would.
type hijackWriter struct {
	header http.Header
	conn   discardConn
	brw    *bufio.ReadWriter
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, w.brw, nil
}

// discardConn is a net.Conn that reads nothing and discards what is written.
type discardConn struct{}

var addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}

func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) LocalAddr() net.Addr              { return addr }
func (discardConn) RemoteAddr() net.Addr             { return addr }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
