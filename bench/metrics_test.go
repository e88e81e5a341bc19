package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/metrics"
)

// BenchmarkMetricsEcho measures what metrics cost an echo server: ecows's message echo
// (servers_ecows.go) with handshake.ServerOptions.Metrics off and set to a metrics.Registry,
// side by side. memory-128B is BenchmarkEcho128's in-memory stream (the server's own cost per
// message, allocations included); tcp-1KiB is a round trip of 1 KiB over loopback TCP with an
// ecows client. The ratio of off to on is the cost; allocs/op must not differ.
func BenchmarkMetricsEcho(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts func() *handshake.ServerOptions
	}{
		{"off", func() *handshake.ServerOptions { return ecowsOptions }},
		{"on", func() *handshake.ServerOptions {
			o := *ecowsOptions
			o.Metrics = &metrics.Registry{}
			return &o
		}},
	} {
		b.Run("memory-128B/"+mode.name, func(b *testing.B) {
			const size = 128
			conn := newEchoStream(b, size, b.N)
			w := &echoHijacker{header: http.Header{}, conn: conn}
			w.brw = bufio.NewReadWriter(bufio.NewReaderSize(conn, 4096), bufio.NewWriterSize(conn, 4096))
			b.SetBytes(size)
			b.ReportAllocs()
			metricsEchoHandler(mode.opts()).ServeHTTP(w, echoRequest())
			select {
			case <-conn.closed:
			case <-time.After(time.Minute):
				b.Fatal("the server did not end the connection after the stream ended")
			}
			b.StopTimer()
			if want := int64(b.N) * (4 + size); conn.written < want {
				b.Fatalf("server wrote %d bytes, want at least %d", conn.written, want)
			}
		})
		b.Run("tcp-1KiB/"+mode.name, func(b *testing.B) {
			opts := mode.opts()
			srv := httptest.NewServer(metricsEchoHandler(opts))
			defer srv.Close()
			c, _, err := handshake.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.CloseNow()
			msg := make([]byte, 1024)
			rand.Read(msg)
			buf := make([]byte, 0, 2048)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.WriteMessage(context.Background(), frame.OpBinary, msg); err != nil {
					b.Fatal(err)
				}
				_, got, err := c.ReadMessage(context.Background(), buf[:0])
				if err != nil || !bytes.Equal(got, msg) {
					b.Fatalf("echo: %v", err)
				}
			}
			b.StopTimer()
			if g, ok := opts.Metrics.(*metrics.Registry); ok && inMessages(g) < int64(b.N) {
				b.Fatalf("the Registry counted %d messages of %d", inMessages(g), b.N)
			}
		})
	}
}

// metricsEchoHandler is ecowsMessage with opts.
func metricsEchoHandler(opts *handshake.ServerOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			return
		}
		go echoMessages(c)
	})
}

// inMessages returns the messages g counted in.
func inMessages(g *metrics.Registry) int64 {
	var n float64
	for _, f := range g.Gather() {
		if f.Name == "ecows_messages_total" {
			for _, m := range f.Metrics {
				if m.Labels[0].Value == "in" {
					n += m.Value
				}
			}
		}
	}
	return int64(n)
}
