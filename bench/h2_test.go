package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	_ "github.com/ecows/ecows/internal/xconnect" // GODEBUG=http2xconnect=1: the server offers RFC 8441
	"github.com/ecows/ecows/transport"
)

// WebSockets over HTTP/2 (RFC 8441) beside HTTP/1.1, ecows at both ends over TLS on loopback,
// the server as ecows serve configures it (16 KiB HTTP/2 frames):
//
//	cd bench && go test -run '^$' -bench 'H2Echo' -benchtime 20000x .
//	cd bench && go test -run '^$' -bench 'H2IdleConn' -benchtime 1x .
//
// BenchmarkH2Echo: one socket, one 1 KiB binary message in flight; msgs/s and the p50 round
// trip. BenchmarkH2IdleConn: heap, goroutine stacks and goroutines per idle socket, both ends
// together (client and server share the process), after one echo each.

// h2Modes are the two ways a socket is dialed here.
var h2Modes = []struct {
	name string
	mode handshake.HTTP2Mode
}{
	{"http1.1", handshake.HTTP2Off},
	{"http2", handshake.HTTP2Require},
}

// h2EchoServer starts a TLS server offering h2 and http/1.1 whose handler upgrades and echoes
// in the handler itself, which serves both protocols (an HTTP/2 stream ends with its handler).
func h2EchoServer(tb testing.TB) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		echoMessages(c)
	}))
	srv.EnableHTTP2 = true
	srv.Config.HTTP2 = &http.HTTP2Config{MaxReadFrameSize: 16 << 10}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	tb.Cleanup(handshake.CloseIdleConnections)
	return srv
}

// h2Dial opens a socket to srv in mode and checks which protocol it runs over.
func h2Dial(tb testing.TB, srv *httptest.Server, mode handshake.HTTP2Mode) *transport.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tlsConf := srv.Client().Transport.(*http.Transport).TLSClientConfig
	c, _, err := handshake.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/", &handshake.DialOptions{HTTP2: mode, TLSConfig: tlsConf})
	if err != nil {
		tb.Fatal(err)
	}
	if c.HTTP2() != (mode == handshake.HTTP2Require) {
		tb.Fatalf("socket over HTTP/2: %v, mode %v", c.HTTP2(), mode)
	}
	return c
}

// h2RoundTrip sends msg on c and reads its echo.
func h2RoundTrip(tb testing.TB, c *transport.Conn, msg, buf []byte) []byte {
	if _, err := c.WriteMessage(context.Background(), frame.OpBinary, msg); err != nil {
		tb.Fatal(err)
	}
	_, got, err := c.ReadMessage(context.Background(), buf[:0])
	if err != nil || len(got) != len(msg) {
		tb.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	return got
}

func BenchmarkH2Echo(b *testing.B) {
	for _, m := range h2Modes {
		b.Run(m.name, func(b *testing.B) {
			srv := h2EchoServer(b)
			c := h2Dial(b, srv, m.mode)
			defer c.CloseNow()
			msg := make([]byte, 1024)
			buf := h2RoundTrip(b, c, msg, nil) // warm up: buffers, pools, the stream
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				buf = h2RoundTrip(b, c, msg, buf)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50µs")
		})
	}
}

func BenchmarkH2IdleConn(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 50
	}
	msg := make([]byte, 1024)
	for _, m := range h2Modes {
		b.Run(m.name, func(b *testing.B) {
			var heap, stack, gor float64
			rounds := 0
			for b.Loop() {
				srv := h2EchoServer(b)
				// One socket first, so that one-off state (pools, the HTTP/2 connection) is not counted.
				first := h2Dial(b, srv, m.mode)
				h2RoundTrip(b, first, msg, nil)
				before := snapshot()
				conns := make([]*transport.Conn, 0, n)
				for range n {
					c := h2Dial(b, srv, m.mode)
					h2RoundTrip(b, c, msg, nil)
					conns = append(conns, c)
				}
				time.Sleep(200 * time.Millisecond) // let the goroutines park
				after := snapshot()
				heap += (float64(after.heap) - float64(before.heap)) / float64(n)
				stack += (float64(after.stack) - float64(before.stack)) / float64(n)
				gor += float64(after.goroutines-before.goroutines) / float64(n)
				rounds++
				for _, c := range conns {
					c.CloseNow()
				}
				first.CloseNow()
				handshake.CloseIdleConnections()
				srv.Close()
			}
			b.ReportMetric(heap/float64(rounds), "heapB/conn")
			b.ReportMetric(stack/float64(rounds), "stackB/conn")
			b.ReportMetric(gor/float64(rounds), "goroutines/conn")
		})
	}
}
