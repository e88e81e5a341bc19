package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// The compress scenario (permessage-deflate, RFC 7692). The peers build their own messages of
// these sizes: texts from a repeated JSON-like record, binaries from random bytes.
var (
	compressTextSizes   = []int{0, 10, 600, 5000, 40000, 70000, 300000}
	compressBinarySizes = []int{5 << 10, 70 << 10}
)

const (
	compressPiece     = 3333     // NextWriter writes of this size
	compressLargeText = 5000     // texts from this size on must arrive compressed
	bombLimit         = 64 << 10 // MaxMessageLen of the ecows side in the bomb case
)

// compressModes are the ecows settings every compress scenario runs with.
var compressModes = []struct {
	name string
	opts *transport.CompressionOptions
}{
	{"no-takeover", &transport.CompressionOptions{}},
	{"takeover", &transport.CompressionOptions{ContextTakeover: true}},
}

type compressMsg struct {
	op frame.Opcode
	p  []byte
}

// compressText returns n bytes of valid UTF-8 text that compresses well.
func compressText(n int, r *rand.Rand) []byte {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"user":"user%d","text":"héllo wörld ✓ %d"},`, i, r.IntN(50), r.IntN(9))
	}
	s := b.String()[:n]
	for len(s) > 0 && !strings.HasSuffix(strings.ToValidUTF8(s, "\x00"), s[len(s)-1:]) {
		s = s[:len(s)-1] // cut inside a character: drop its partial bytes
	}
	return []byte(s + strings.Repeat(" ", n-len(s)))
}

func compressMessages() []compressMsg {
	r := rand.New(rand.NewPCG(1, 2))
	var msgs []compressMsg
	for _, n := range compressTextSizes {
		msgs = append(msgs, compressMsg{frame.OpText, compressText(n, r)})
	}
	for _, n := range compressBinarySizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		msgs = append(msgs, compressMsg{frame.OpBinary, b})
	}
	return msgs
}

func compressDial(copts *transport.CompressionOptions, maxMessage int64) *handshake.DialOptions {
	return &handshake.DialOptions{Options: transport.Options{
		MaxPayloadLen: largeLimit, MaxMessageLen: maxMessage, CloseTimeout: closeTimeout, Compression: copts,
	}}
}

// sendCompressMsg sends m with WriteMessage, or with NextWriter in compressPiece writes.
func sendCompressMsg(c *transport.Conn, m compressMsg, pieces bool) error {
	if !pieces {
		_, err := c.WriteMessage(context.Background(), m.op, m.p)
		return err
	}
	w, err := c.NextWriter(context.Background(), m.op)
	if err != nil {
		return err
	}
	for p := m.p; len(p) > 0; p = p[min(len(p), compressPiece):] {
		if _, err := w.Write(p[:min(len(p), compressPiece)]); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// recvMessage reads one data message with RecvFrame, answering pings, and reports whether its
// first frame had RSV1 set (it was compressed).
func recvMessage(c *transport.Conn, timeout time.Duration) (op frame.Opcode, msg []byte, rsv1 bool, err error) {
	first := true
	for {
		f, err := c.RecvFrame(timeout)
		if err != nil {
			return op, msg, rsv1, err
		}
		switch f.Opcode {
		case frame.OpPing:
			c.SendPong(f.Payload)
			continue
		case frame.OpPong:
			continue
		case frame.OpClose:
			return op, msg, rsv1, &transport.CloseError{Code: f.CloseCode(), Reason: f.CloseReason()}
		}
		if first {
			op, rsv1, first = f.Opcode, f.Rsv1, false
		}
		msg = append(msg, f.Payload...)
		if f.Fin {
			return op, msg, rsv1, nil
		}
	}
}

// ---- ecows client → peer server ----

// ecowsCompressClient dials url with copts and sends every compress message twice, with
// WriteMessage and then with NextWriter, checking each echo and that the peer compressed the
// large texts. It returns the agreed extensions.
func ecowsCompressClient(t *testing.T, url string, copts *transport.CompressionOptions) string {
	t.Helper()
	c := dial(t, url, compressDial(copts, largeLimit))
	ext := c.Extensions()
	if !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("permessage-deflate not negotiated: extensions %q", ext)
	}
	for _, pieces := range []bool{false, true} {
		for _, m := range compressMessages() {
			if err := sendCompressMsg(c, m, pieces); err != nil {
				t.Fatalf("sending %v %d bytes (pieces %v): %v", m.op, len(m.p), pieces, err)
			}
			op, got, rsv1, err := recvMessage(c, scenarioTimeout)
			if err != nil {
				t.Fatalf("echo of %v %d bytes (pieces %v): %v", m.op, len(m.p), pieces, err)
			}
			if op != m.op || !bytes.Equal(got, m.p) {
				t.Fatalf("echo of %v %d bytes (pieces %v): got %v %d bytes", m.op, len(m.p), pieces, op, len(got))
			}
			if m.op == frame.OpText && len(m.p) >= compressLargeText && !rsv1 {
				t.Errorf("the peer's echo of a %d-byte text was not compressed (RSV1 clear)", len(m.p))
			}
		}
	}
	closeAndCheck(t, c, frame.CloseNormal, "done")
	return ext
}

// ecowsCompressBomb dials url, where the peer sends 1 MiB of zeros compressed, with
// MaxMessageLen 64 KiB: ecows must fail with 1009.
func ecowsCompressBomb(t *testing.T, url string, copts *transport.CompressionOptions) {
	t.Helper()
	c := dial(t, url, compressDial(copts, bombLimit))
	if !strings.Contains(c.Extensions(), "permessage-deflate") {
		t.Fatalf("permessage-deflate not negotiated: extensions %q", c.Extensions())
	}
	_, _, err := read(c)
	if code := protocolCode(t, err); code != frame.CloseMessageTooBig {
		t.Errorf("ecows failed the bomb with %d (%v), want 1009", code, err)
	}
}

// runEcowsCompressClient runs the compress and bomb cases against a peer server for each ecows
// mode; paths are the peer server's paths for the compress echo (several when the peer's
// server has settings to vary), bombPath "" when there is none.
func runEcowsCompressClient(t *testing.T, base string, paths []string, bombPath string) map[string]string {
	agreed := map[string]string{}
	for _, m := range compressModes {
		for _, path := range paths {
			t.Run("compress"+path+"/"+m.name, func(t *testing.T) {
				ext := ecowsCompressClient(t, base+path, m.opts)
				agreed[path+"/"+m.name] = ext
				t.Logf("agreed on %q", ext)
			})
		}
		if bombPath != "" {
			t.Run("compress-bomb/"+m.name, func(t *testing.T) { ecowsCompressBomb(t, base+bombPath, m.opts) })
		}
	}
	return agreed
}

// ---- peer client → ecows server ----

// compressResult is what the ecows compress server saw on one connection.
type compressResult struct {
	path      string
	ext       string // agreed extensions
	offer     string // the client's Sec-WebSocket-Extensions
	messages  int
	large     int // texts of compressLargeText bytes or more received
	largeRSV1 int // ... whose first frame had RSV1 set
	err       error
}

// compressServer is an ecows server for peer clients: /compress echoes every message with
// RecvFrame, alternately through WriteMessage and NextWriter (compressPiece writes);
// /compress-bomb has MaxMessageLen bombLimit and reads.
type compressServer struct {
	url     string
	results chan compressResult
}

func startCompressServer(t *testing.T, copts *transport.CompressionOptions) *compressServer {
	t.Helper()
	s := &compressServer{results: make(chan compressResult, 16)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[*transport.Conn]bool{}
	handle := func(limit int64) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			c, err := handshake.Upgrade(w, r, &handshake.ServerOptions{Options: transport.Options{
				MaxPayloadLen: largeLimit, MaxMessageLen: limit, CloseTimeout: closeTimeout, Compression: copts,
			}, CheckOrigin: func(*http.Request) bool { return true }}) // the Chromium page comes from another port
			if err != nil {
				return
			}
			wg.Add(1)
			defer wg.Done()
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			defer c.CloseNow()
			res := compressResult{path: r.URL.Path, ext: c.Extensions(), offer: r.Header.Get("Sec-WebSocket-Extensions")}
			for {
				op, msg, rsv1, err := recvMessage(c, scenarioTimeout)
				if err != nil {
					res.err = err
					break
				}
				if op == frame.OpText && len(msg) >= compressLargeText {
					res.large++
					if rsv1 {
						res.largeRSV1++
					}
				}
				err = sendCompressMsg(c, compressMsg{op, msg}, res.messages%2 == 1)
				res.messages++
				if err != nil {
					res.err = err
					break
				}
			}
			s.results <- res
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/compress", handle(largeLimit))
	mux.Handle("/compress-bomb", handle(bombLimit))
	ln := listen(t)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	s.url = "ws://" + ln.Addr().String()
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		for c := range conns {
			c.CloseNow()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// await returns the result of the next connection to end.
func (s *compressServer) await(t *testing.T) compressResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(scenarioTimeout + 5*time.Second):
		t.Fatalf("the ecows compress server saw no connection end")
		return compressResult{}
	}
}

// checkCompressEcho checks the ecows side of a peer client's compress run: compression
// agreed, the large texts compressed, and a normal close; wantMessages is how many messages
// the peer sent.
func checkCompressEcho(t *testing.T, res compressResult, wantMessages int) {
	t.Helper()
	t.Logf("client offered %q, ecows agreed on %q", res.offer, res.ext)
	if !strings.Contains(res.ext, "permessage-deflate") {
		t.Errorf("ecows server did not agree on permessage-deflate: offer %q, extensions %q", res.offer, res.ext)
	}
	if res.messages != wantMessages {
		t.Errorf("ecows server echoed %d messages, want %d", res.messages, wantMessages)
	}
	if res.large == 0 || res.largeRSV1 != res.large {
		t.Errorf("%d of the peer's %d large texts arrived compressed, want all", res.largeRSV1, res.large)
	}
	var ce *transport.CloseError
	if !errors.As(res.err, &ce) || ce.Code != frame.CloseNormal {
		t.Errorf("connection ended with %v, want the peer's 1000", res.err)
	}
}

// checkCompressBomb checks the ecows side of a bomb: compression agreed, and a 1009 failure.
func checkCompressBomb(t *testing.T, res compressResult) {
	t.Helper()
	if !strings.Contains(res.ext, "permessage-deflate") {
		t.Errorf("ecows server did not agree on permessage-deflate: offer %q", res.offer)
	}
	if code := protocolCode(t, res.err); code != frame.CloseMessageTooBig {
		t.Errorf("ecows server failed the bomb with %d (%v), want 1009", code, res.err)
	}
}

// compressMessageCount is how many messages a peer client sends in the compress scenario:
// every size, twice.
func compressMessageCount() int { return 2 * (len(compressTextSizes) + len(compressBinarySizes)) }

// runPeerCompressClient runs a peer client's compress and compress-bomb scenarios against an
// ecows compress server for each ecows mode. client runs the peer with url and scenario.
func runPeerCompressClient(t *testing.T, client func(t *testing.T, url, scenario string) peerReport) {
	for _, m := range compressModes {
		s := startCompressServer(t, m.opts)
		t.Run("compress/"+m.name, func(t *testing.T) {
			r := client(t, s.url+"/compress", "compress")
			r.verify(t, "compress-echo", "compress-negotiated")
			checkCompressEcho(t, s.await(t), compressMessageCount())
			if e, ok := r.find("proto"); ok {
				t.Logf("peer client reports extensions %q", e.Detail)
			}
		})
		t.Run("compress-bomb/"+m.name, func(t *testing.T) {
			r := client(t, s.url+"/compress-bomb", "compress-bomb")
			r.verify(t, "compress-negotiated")
			if e := r.closed(t); e.Code != 1009 {
				t.Errorf("peer got close %d %q, want 1009", e.Code, e.Reason)
			}
			checkCompressBomb(t, s.await(t))
		})
	}
}
