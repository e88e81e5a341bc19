package reliability

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

// Request headers over the limit of "ecows serve" (http.Server.MaxHeaderBytes, 16 KiB) are
// refused with 431 before any handler runs; headers under it pass.
func TestOversizedRequestHeaders(t *testing.T) {
	t.Parallel()
	addr := ecowsServe(t)
	if resp := rawExchange(t, addr, upgradeRequest(addr, "Cookie: a="+strings.Repeat("x", 8<<10))); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("8 KiB of headers: %s, want 101", resp.Status)
	}
	resp := rawExchange(t, addr, upgradeRequest(addr, "Cookie: a="+strings.Repeat("x", 64<<10)))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: %s, want 431", resp.Status)
	}
	// Many small headers count the same way.
	var many []string
	for i := range 2000 {
		many = append(many, fmt.Sprintf("X-H%d: v", i))
	}
	if resp := rawExchange(t, addr, upgradeRequest(addr, many...)); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("2000 header lines: %s, want 431", resp.Status)
	}
}

// Hundreds of subprotocol or extension tokens cost bounded work and get the right answer:
// the server's subprotocol when it is among them (wherever), none otherwise, and no extension
// (ecows negotiates none yet) unless the list is malformed, which is a 400.
func TestManyTokens(t *testing.T) {
	wstest.CheckGoroutines(t)
	var offered atomic.Int64
	srv := startServer(t, echoFrames(0, 0), &handshake.ServerOptions{Subprotocols: []string{"chat", "superchat"}})
	sel := startServer(t, echoFrames(0, 0), &handshake.ServerOptions{SelectSubprotocol: func(_ *http.Request, offers []string) string {
		offered.Store(int64(len(offers)))
		return offers[len(offers)-1]
	}})
	tokens := func(prefix string, n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("%s%d", prefix, i))
		}
		return s
	}
	timed := func(name string, f func()) {
		start := time.Now()
		f()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v", name, d)
		} else {
			t.Logf("%s: %v", name, d.Round(time.Microsecond))
		}
	}

	timed("Dial offering 500 subprotocols, the server's last", func() {
		c := dialtest.Dial(t, srv.URL, &handshake.DialOptions{Subprotocols: append(tokens("p", 499), "superchat")})
		if c.Subprotocol() != "superchat" {
			t.Errorf("subprotocol %q, want superchat", c.Subprotocol())
		}
	})
	timed("1000 subprotocols, none the server's", func() {
		resp := rawExchange(t, srv.Addr, upgradeRequest(srv.Addr, "Sec-WebSocket-Protocol: "+strings.Join(tokens("p", 1000), ", ")))
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header["Sec-Websocket-Protocol"] != nil {
			t.Errorf("%s with Sec-WebSocket-Protocol %q", resp.Status, resp.Header["Sec-Websocket-Protocol"])
		}
	})
	timed("500 Sec-WebSocket-Protocol lines, the last the server's", func() {
		var lines []string
		for _, p := range append(tokens("p", 499), "chat") {
			lines = append(lines, "Sec-WebSocket-Protocol: "+p)
		}
		resp := rawExchange(t, srv.Addr, upgradeRequest(srv.Addr, lines...))
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "chat" {
			t.Errorf("%s with Sec-WebSocket-Protocol %q", resp.Status, resp.Header["Sec-Websocket-Protocol"])
		}
	})
	timed("SelectSubprotocol given 1000 offers", func() {
		resp := rawExchange(t, sel.Addr, upgradeRequest(sel.Addr, "Sec-WebSocket-Protocol: "+strings.Join(tokens("q", 1000), ",")))
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "q999" || offered.Load() != 1000 {
			t.Errorf("%s with Sec-WebSocket-Protocol %q after %d offers", resp.Status, resp.Header["Sec-Websocket-Protocol"], offered.Load())
		}
	})
	var exts []string
	for i := range 500 {
		exts = append(exts, fmt.Sprintf(`x-e%d; a=1; b="2"; c`, i))
	}
	timed("500 extension offers with parameters", func() {
		resp := rawExchange(t, srv.Addr, upgradeRequest(srv.Addr, "Sec-WebSocket-Extensions: "+strings.Join(exts, ", ")))
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header["Sec-Websocket-Extensions"] != nil {
			t.Errorf("%s with Sec-WebSocket-Extensions %q", resp.Status, resp.Header["Sec-Websocket-Extensions"])
		}
	})
	timed("500 extension offers, the last malformed", func() {
		resp := rawExchange(t, srv.Addr, upgradeRequest(srv.Addr, "Sec-WebSocket-Extensions: "+strings.Join(exts, ", ")+", x; =1"))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s, want 400", resp.Status)
		}
	})
}

// largeAllocs returns how many heap allocations of 1 MiB or more the process has made.
func largeAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs-by-size:bytes"}}
	metrics.Read(s)
	h := s[0].Value.Float64Histogram()
	var n uint64
	for i, c := range h.Counts {
		if h.Buckets[i] >= 1<<20 {
			n += c
		}
	}
	return n
}

func totalAlloc() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// hugeHeader is a frame header declaring a payload of 2^63-1 bytes.
func hugeHeader(masked bool) []byte {
	b := []byte{0x82, 127}
	if masked {
		b[1] |= 0x80
	}
	b = binary.BigEndian.AppendUint64(b, 1<<63-1)
	if masked {
		b = append(b, clientKey[:]...)
	}
	return append(b, "some payload bytes"...)
}

// A frame header declaring a 2^63-1 byte payload is refused from the header, with close 1009,
// before anything is allocated for it, on every read path and in both roles.
func TestHugeDeclaredLength(t *testing.T) {
	nextReader := connFunc(func(ctx context.Context, c *transport.Conn) error {
		for {
			_, r, err := c.NextReader(ctx)
			if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
		}
	})
	for _, tc := range []struct {
		name string
		h    middleware.ConnHandler
		opts transport.Options
	}{
		{"RecvFrame", echoFrames(0, 0), transport.Options{}},
		{"ReadMessage", echoMessages(), transport.Options{}},
		{"NextReader", nextReader, transport.Options{}},
		{"ReadMessage without a frame limit", echoMessages(), transport.Options{MaxPayloadLen: -1}},
		{"RecvFrame without a frame limit", echoFrames(0, 0), transport.Options{MaxPayloadLen: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			rec := record(tc.h)
			// After its 1009 the server waits for the peer's end of the close handshake, at
			// most CloseTimeout: the bytes after the header belong to the declared payload.
			tc.opts.CloseTimeout = 300 * time.Millisecond
			srv := startServer(t, rec, &handshake.ServerOptions{Options: tc.opts})
			_, raw := dialRaw(t, srv.URL)
			srv.waitConns(t, 1, 5*time.Second)
			large0, total0 := largeAllocs(), totalAlloc()
			if _, err := raw.Write(hugeHeader(true)); err != nil {
				t.Fatal(err)
			}
			code, err := readClose(raw, bufio.NewReader(raw), 5*time.Second)
			if err != nil || code != frame.CloseMessageTooBig {
				t.Fatalf("close %d, %v; want 1009", code, err)
			}
			raw.Write(clientFrame(nil, true, frame.OpClose, []byte{0x03, 0xf1})) // 1009 back
			raw.CloseWrite()
			e := rec.next(t, 10*time.Second)
			if transport.CloseStatus(e.err) != frame.CloseMessageTooBig {
				t.Errorf("ServeConn returned %v, want a 1009 protocol error", e.err)
			}
			large, total := largeAllocs()-large0, totalAlloc()-total0
			if large != 0 || total > 1<<20 {
				t.Errorf("%d allocations of 1 MiB or more, %d bytes in all, while refusing the frame", large, total)
			}
			t.Logf("refused with 1009: %v; %d bytes allocated meanwhile, none of 1 MiB or more", e.err, total)
		})
	}

	t.Run("client", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan error, 1)
		go func() {
			got <- func() error {
				nc, err := ln.Accept()
				if err != nil {
					return err
				}
				defer nc.Close()
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return err
				}
				resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					wstest.AcceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
				if _, err := nc.Write(append([]byte(resp), hugeHeader(false)...)); err != nil {
					return err
				}
				code, err := readClose(nc, br, 5*time.Second)
				if err == nil && code != frame.CloseMessageTooBig {
					err = fmt.Errorf("the client sent close %d, want 1009", code)
				}
				return err
			}()
		}()
		c := dialtest.Dial(t, "ws://"+ln.Addr().String()+"/", nil)
		large0, total0 := largeAllocs(), totalAlloc()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err = c.ReadMessage(ctx, nil)
		if !errors.Is(err, frame.ErrTooBig) {
			t.Errorf("ReadMessage: %v, want frame.ErrTooBig", err)
		}
		if err := <-got; err != nil {
			t.Error(err)
		}
		if large, total := largeAllocs()-large0, totalAlloc()-total0; large != 0 || total > 1<<20 {
			t.Errorf("%d allocations of 1 MiB or more, %d bytes in all, while refusing the frame", large, total)
		}
	})
}

// A ping flood from a peer that never reads does not make pongs queue: each pong is written
// before the next ping is read, so when the peer's window is full the pong's write times out
// and the connection ends, with the server's memory flat meanwhile.
func TestPingFlood(t *testing.T) {
	for _, layer := range []struct {
		name string
		h    middleware.ConnHandler
	}{{"frames with AutoPong", echoFrames(0, 0)}, {"messages", echoMessages()}} {
		t.Run(layer.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			const writeTimeout = 300 * time.Millisecond
			rec := record(layer.h)
			srv := startServer(t, rec, &handshake.ServerOptions{Options: transport.Options{WriteTimeout: writeTimeout}})
			_, raw := dialRawBuf(t, srv.URL, 4<<10) // and never reads
			srv.waitConns(t, 1, 5*time.Second)

			var batch []byte
			for range 64 {
				batch = clientFrame(batch, true, frame.OpPing, make([]byte, frame.MaxControlPayload))
			}
			mem0 := liveMemory()
			sampler := wstest.SampleHeap(t, 20*time.Millisecond)
			start := time.Now()
			var pings atomic.Int64
			flooding := make(chan struct{})
			go func() {
				defer close(flooding)
				for {
					if _, err := raw.Write(batch); err != nil {
						return
					}
					pings.Add(64)
				}
			}()
			e := rec.next(t, 30*time.Second)
			took := e.at.Sub(start)
			peak := sampler.Stop()
			raw.Close()
			<-flooding

			if !errors.Is(e.err, os.ErrDeadlineExceeded) {
				t.Errorf("ServeConn returned %v, want a write timeout", e.err)
			}
			if grew := signedDiff(peak, mem0.heap); grew > 16<<20 {
				t.Errorf("heap grew by %s during the flood", mib(uint64(grew)))
			}
			t.Logf("flood of %d pings ended by write timeout after %v; heap peak %+d bytes over the baseline",
				pings.Load(), took.Round(time.Millisecond), signedDiff(peak, mem0.heap))
		})
	}
}

// A message in 1-byte fragments is bounded by MaxMessageLen as the fragments arrive: the one
// that crosses it closes the connection with 1009, at every layer, and with the default limit
// of 1 MiB too.
func TestOneByteFragments(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        middleware.ConnHandler
		limit    int64 // MaxMessageLen, 0 for the default
		fragment int   // bytes per fragment
	}{
		{"frames, 1-byte fragments", echoFrames(0, 0), 64 << 10, 1},
		{"messages, 1-byte fragments", echoMessages(), 64 << 10, 1},
		{"messages, default limit", echoMessages(), 0, 65535},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			limit := tc.limit
			if limit == 0 {
				limit = transport.DefaultMaxMessageLen
			}
			rec := record(tc.h)
			srv := startServer(t, rec, &handshake.ServerOptions{Options: transport.Options{MaxMessageLen: tc.limit, CloseTimeout: 2 * time.Second}})
			_, raw := dialRaw(t, srv.URL)
			srv.waitConns(t, 1, 5*time.Second)
			closed := make(chan frame.CloseCode, 1)
			go func() {
				code, _ := readClose(raw, bufio.NewReader(raw), 30*time.Second)
				closed <- code
			}()

			mem0 := liveMemory()
			sampler := wstest.SampleHeap(t, 20*time.Millisecond)
			start := time.Now()
			payload := make([]byte, tc.fragment)
			var buf []byte
			frames := 0
			for sent := int64(0); sent <= limit; {
				op := frame.OpContinuation
				if sent == 0 {
					op = frame.OpBinary
				}
				n := min(int64(tc.fragment), limit+1-sent)
				buf = clientFrame(buf, false, op, payload[:n])
				sent += n
				frames++
				if len(buf) >= 32<<10 || sent > limit {
					if _, err := raw.Write(buf); err != nil {
						t.Fatalf("after %d bytes: %v", sent, err)
					}
					buf = buf[:0]
				}
			}
			code := <-closed
			raw.Write(clientFrame(nil, true, frame.OpClose, []byte{0x03, 0xf1})) // 1009 back
			raw.CloseWrite()
			e := rec.next(t, 10*time.Second)
			took := e.at.Sub(start)
			peak := sampler.Stop()
			if code != frame.CloseMessageTooBig || transport.CloseStatus(e.err) != frame.CloseMessageTooBig {
				t.Errorf("client got close %d, ServeConn returned %v; want 1009 both", code, e.err)
			}
			// The message buffer may reach the limit, not more.
			if grew := signedDiff(peak, mem0.heap); grew > 4*limit+8<<20 {
				t.Errorf("heap grew by %s for a limit of %d bytes", mib(uint64(grew)), limit)
			}
			t.Logf("%d fragments, limit %d bytes: closed 1009 after %v, heap peak %+d bytes over the baseline",
				frames, limit, took.Round(time.Millisecond), signedDiff(peak, mem0.heap))
		})
	}
}

// A browser page from another origin cannot open a WebSocket by default (403), in the library
// and in "ecows serve"; a page from the same origin, a non-browser client and an allowed
// pattern can.
func TestCrossOrigin(t *testing.T) {
	wstest.CheckGoroutines(t)
	srv := startServer(t, echoFrames(0, 0), nil)
	allowed := startServer(t, echoFrames(0, 0), &handshake.ServerOptions{OriginPatterns: []string{"*.example.com"}})
	for _, tc := range []struct {
		srv    *testServer
		origin string
		want   int
	}{
		{srv, "https://evil.example", http.StatusForbidden},
		{srv, "null", http.StatusForbidden},
		{srv, "http://" + strings.Replace(srv.Addr, "127.0.0.1", "127.0.0.2", 1), http.StatusForbidden},
		{srv, "http://" + srv.Addr, http.StatusSwitchingProtocols},
		{srv, "", http.StatusSwitchingProtocols},
		{allowed, "https://app.example.com", http.StatusSwitchingProtocols},
		{allowed, "https://example.com.evil.example", http.StatusForbidden},
	} {
		var extra []string
		if tc.origin != "" {
			extra = append(extra, "Origin: "+tc.origin)
		}
		if resp := rawExchange(t, tc.srv.Addr, upgradeRequest(tc.srv.Addr, extra...)); resp.StatusCode != tc.want {
			t.Errorf("Origin %q: %s, want %d", tc.origin, resp.Status, tc.want)
		}
	}
	// Dial reports the refusal with the status and the server's reason.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := handshake.Dial(ctx, srv.URL, &handshake.DialOptions{Origin: "https://evil.example", Proxy: noProxy})
	var se *handshake.StatusError
	if !errors.As(err, &se) || resp.StatusCode != http.StatusForbidden {
		t.Errorf("Dial from another origin: %v", err)
	}
}

func TestCrossOriginEcowsServe(t *testing.T) {
	t.Parallel()
	addr := ecowsServe(t)
	if resp := rawExchange(t, addr, upgradeRequest(addr, "Origin: https://evil.example")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("ecows serve, cross-origin upgrade: %s, want 403", resp.Status)
	}
	if resp := rawExchange(t, addr, upgradeRequest(addr, "Origin: http://"+addr)); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("ecows serve, same-origin upgrade: %s, want 101", resp.Status)
	}
}
