package interop

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
	// GODEBUG=http2xconnect=1 (unless GODEBUG sets it) before net/http reads it: its HTTP/2
	// server offers extended CONNECT (RFC 8441) only with it.
	_ "github.com/ecows/ecows/internal/xconnect"
)

// h2BinaryLen is the binary message the HTTP/2 peers echo: more than one WebSocket frame
// (MaxPayloadLen 65535) and more than one HTTP/2 DATA frame (16 KiB).
const h2BinaryLen = 70000

// h2Server is an ecows echo server that speaks HTTP/1.1 and HTTP/2 on one TLS port. Its
// WebSocket handler records whether each request came over HTTP/2 and how each connection
// ended.
type h2Server struct {
	url  string // https://127.0.0.1:port
	srv  *http.Server
	mu   sync.Mutex
	reqs []h2Request
	wg   sync.WaitGroup
}

// h2Request is what the server saw of one WebSocket request.
type h2Request struct {
	remote string // r.RemoteAddr
	proto  string // r.Proto
	major  int    // r.ProtoMajor
	http2  bool   // Conn.HTTP2
	err    error  // how the echo loop ended
	echoed int    // messages echoed
}

// startH2Server starts the server; extra handlers serve other paths. ecows' CloseTimeout is
// closeTimeout, as everywhere in these tests.
func startH2Server(t *testing.T, extra map[string]http.Handler, opts *handshake.ServerOptions) *h2Server {
	t.Helper()
	setupCert(t)
	s := &h2Server{}
	if opts == nil {
		// Browsers send a message as one frame, whatever its size.
		opts = &handshake.ServerOptions{Options: transport.Options{CloseTimeout: closeTimeout, MaxPayloadLen: largeLimit, MaxMessageLen: largeLimit}}
	}
	mux := http.NewServeMux()
	for path, h := range extra {
		mux.Handle(path, h)
	}
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		rec := h2Request{remote: r.RemoteAddr, proto: r.Proto, major: r.ProtoMajor}
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			rec.err = err
			s.record(rec)
			return
		}
		s.wg.Add(1)
		defer s.wg.Done()
		defer c.CloseNow()
		rec.http2 = c.HTTP2()
		var buf []byte
		for {
			op, msg, err := c.ReadMessage(context.Background(), buf[:0])
			if err != nil {
				rec.err = err
				break
			}
			if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
				rec.err = err
				break
			}
			rec.echoed++
			buf = msg
		}
		s.record(rec)
	})
	ln := listen(t)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{testCert}, NextProtos: []string{"h2", "http/1.1"}},
		ErrorLog:          log.New(io.Discard, "", 0),
		// net/http gives back a connection's flow-control window only as handlers read, so a
		// WebSocket that stops reading holds up to a stream's window of the connection's;
		// with the defaults (1 MiB each) one such stream stalls all the others.
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerConnection: 16 << 20, MaxReceiveBufferPerStream: 256 << 10},
	}
	go s.srv.ServeTLS(ln, "", "")
	s.url = "https://" + ln.Addr().String()
	t.Cleanup(func() {
		s.srv.Close()
		s.wg.Wait()
	})
	return s
}

func (s *h2Server) record(r h2Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

// awaitRequests waits until n WebSocket requests have ended and returns them.
func (s *h2Server) awaitRequests(t *testing.T, n int) []h2Request {
	t.Helper()
	for deadline := time.Now().Add(scenarioTimeout); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		got := append([]h2Request(nil), s.reqs...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d WebSocket requests ended within %v, want %d: %+v", len(got), scenarioTimeout, n, got)
		}
	}
}

// checkH2Echo checks that a request came over HTTP/2, echoed want messages and ended with
// the client's close 1000.
func checkH2Echo(t *testing.T, r h2Request, want int) {
	t.Helper()
	if r.major != 2 || !r.http2 {
		t.Errorf("WebSocket request over %s (Conn.HTTP2 %v), want HTTP/2", r.proto, r.http2)
	}
	if r.echoed != want {
		t.Errorf("echoed %d messages, want %d", r.echoed, want)
	}
	var ce *transport.CloseError
	if !errors.As(r.err, &ce) || ce.Code != frame.CloseNormal {
		t.Errorf("echo loop ended with %v, want the client's close 1000", r.err)
	}
}

// h2Page opens a WebSocket to the server that served it, which is HTTP/2 when the page came
// over HTTP/2: a text and a 70,000-byte binary echo, then a close, and it posts what it saw.
const h2Page = `<!doctype html>
<meta charset="utf-8">
<title>ecows interop: WebSocket over HTTP/2</title>
<script>
'use strict';
const N = ` + "70000" + `;
const report = {};
function post() {
  fetch('/results', {method: 'POST', body: JSON.stringify(report)});
}
const ws = new WebSocket('wss://' + location.host + '/ws');
ws.binaryType = 'arraybuffer';
const timer = setTimeout(() => { report.error = 'timeout'; post(); }, 15000);
let step = 0;
ws.onopen = () => ws.send('hello over HTTP/2 ✓');
ws.onerror = () => { report.error = 'error event'; };
ws.onmessage = (e) => {
  if (step === 0) {
    report.text = e.data;
    const b = new Uint8Array(N);
    for (let i = 0; i < N; i++) b[i] = i % 251;
    ws.send(b);
  } else {
    const got = new Uint8Array(e.data);
    let ok = got.length === N;
    for (let i = 0; ok && i < N; i++) ok = got[i] === i % 251;
    report.binary = ok;
    ws.close(1000, 'done');
  }
  step++;
};
ws.onclose = (e) => {
  clearTimeout(timer);
  report.code = e.code;
  report.wasClean = e.wasClean;
  post();
};
</script>
`

// TestH2Chromium loads a page from an ecows server over HTTP/2 in headless Chromium; the page
// opens new WebSocket("wss://...") to the same server, which Chromium sends as an extended
// CONNECT on the page's HTTP/2 connection once the server advertises it.
func TestH2Chromium(t *testing.T) {
	chromium := requireChromium(t)
	type report struct {
		Text     string `json:"text"`
		Binary   bool   `json:"binary"`
		Code     int    `json:"code"`
		WasClean bool   `json:"wasClean"`
		Error    string `json:"error"`
	}
	posted := make(chan report, 1)
	pageProto := make(chan string, 1)
	s := startH2Server(t, map[string]http.Handler{
		"GET /{$}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case pageProto <- r.Proto:
			default:
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, h2Page)
		}),
		"GET /favicon.ico": http.NotFoundHandler(),
		"POST /results": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var rep report
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&rep); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			select {
			case posted <- rep:
			default:
			}
		}),
	}, nil)

	profile, err := os.MkdirTemp("", "ecows-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	p := startProc(t, nil, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
		"--ignore-certificate-errors", "--user-data-dir="+profile, s.url+"/")
	var rep report
	select {
	case rep = <-posted:
	case <-p.done:
		t.Fatalf("chromium exited before the page posted its results: %v\n%s", p.err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the page did not post its results within 60 s; chromium said:\n%s", p.stderr.String())
	}
	killProcessGroup(p.cmd)

	if proto := <-pageProto; proto != "HTTP/2.0" {
		t.Errorf("page served over %s, want HTTP/2.0", proto)
	}
	if rep.Error != "" || rep.Text != "hello over HTTP/2 ✓" || !rep.Binary || rep.Code != 1000 || !rep.WasClean {
		t.Errorf("page saw %+v; want the text and binary echoed and a clean close 1000", rep)
	}
	reqs := s.awaitRequests(t, 1)
	checkH2Echo(t, reqs[0], 2)
}

// TestH2NodeClient runs Node's built-in http2 module as the client of an ecows server: an
// extended CONNECT with frames written by peers/h2_peer.js, a text and a 70,000-byte binary
// echoed, then a close handshake.
func TestH2NodeClient(t *testing.T) {
	requireNode(t)
	s := startH2Server(t, nil, nil)
	setupCert(t)
	r := runClientProc(t, nil, "node", "peers/h2_peer.js", "client", s.url+"/ws", certFile)
	r.verify(t, "enable-connect-protocol", "status-200", "text", "binary")
	if e := r.closed(t); e.Code != int(frame.CloseNormal) {
		t.Errorf("node saw close %d %q, want ecows' answer 1000", e.Code, e.Reason)
	}
	checkH2Echo(t, s.awaitRequests(t, 1)[0], 2)
}

// requireNode checks for node, which the http2 peer needs without any package.
func requireNode(t *testing.T) {
	require(t, "Node.js", "apt-get install -y nodejs (or run interop/ci.sh)", func() string {
		if _, err := exec.LookPath("node"); err != nil {
			return "no node on PATH"
		}
		return ""
	})
}

// h2EchoOnce sends a text and a 70,000-byte binary message on c and checks their echoes.
func h2EchoOnce(t *testing.T, c *transport.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	for _, m := range []struct {
		op frame.Opcode
		p  []byte
	}{{frame.OpText, []byte(textMsg)}, {frame.OpBinary, pattern(h2BinaryLen)}} {
		if _, err := c.WriteMessage(context.Background(), m.op, m.p); err != nil {
			t.Fatal(err)
		}
		op, got, err := c.ReadMessage(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if op != m.op || string(got) != string(m.p) {
			t.Fatalf("echo: opcode %v, %d bytes; want %v, %d bytes", op, len(got), m.op, len(m.p))
		}
	}
}

// TestH2NodeServer dials Node's built-in http2 server (enableConnectProtocol, frames parsed
// and written by peers/h2_peer.js) with ecows' Dial and HTTP2Require: two WebSockets, which
// share one HTTP/2 session, each echoing and closing.
func TestH2NodeServer(t *testing.T) {
	requireNode(t)
	setupCert(t)
	t.Cleanup(handshake.CloseIdleConnections)
	ps := startServerProc(t, nil, "node", "peers/h2_peer.js", "server", certFile, keyFile)
	opts := &handshake.DialOptions{
		HTTP2:        handshake.HTTP2Require,
		TLSConfig:    clientTLS(t),
		Subprotocols: []string{proto1, proto2},
		Options:      transport.Options{CloseTimeout: closeTimeout, MaxPayloadLen: largeLimit}, // node echoes in one frame
	}
	for i := range 2 {
		path := fmt.Sprintf("/ws%d", i)
		c, resp, err := handshake.Dial(context.Background(), ps.tlsURL+path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 || !c.HTTP2() || c.Subprotocol() != proto1 {
			t.Errorf("answer over %s, Conn.HTTP2 %v, subprotocol %q; want HTTP/2 and %s", resp.Proto, c.HTTP2(), c.Subprotocol(), proto1)
		}
		h2EchoOnce(t, c)
		if err := c.Close(frame.CloseNormal, "done"); err != nil {
			t.Errorf("close handshake: %v", err)
		}
		c.CloseNow()
	}
	deadline := time.Now().Add(scenarioTimeout)
	for closed := 0; closed < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		closed = 0
		for _, e := range ps.events.all() {
			if e.Ev == "closed" {
				closed++
			}
		}
	}
	sessions, closes := 0, 0
	for _, e := range ps.events.all() {
		switch {
		case e.Ev == "check" && e.Name == "session":
			sessions++
		case e.Ev == "check" && !e.OK:
			t.Errorf("node check %s failed: %s", e.Name, e.Detail)
		case e.Ev == "closed":
			closes++
			if e.Code != int(frame.CloseNormal) || e.Reason != "done" {
				t.Errorf("node saw close %d %q on %s, want 1000 \"done\"", e.Code, e.Reason, e.Path)
			}
		}
	}
	if sessions != 1 || closes != 2 {
		t.Errorf("node saw %d sessions and %d closes, want 1 and 2", sessions, closes)
	}
}

// TestH2ManyStreamsOneStalled multiplexes 100 ecows WebSockets on one HTTP/2 connection,
// ecows at both ends. One client stops reading while it sends far more than the flow-control
// windows hold, so the server's echo on that stream blocks, and with it the server's reads of
// it; the 99 others echo as if nothing happened. Then the stalled client reads again and its
// stream recovers.
func TestH2ManyStreamsOneStalled(t *testing.T) {
	const (
		streams  = 100
		stallMsg = 64 << 10
		stallN   = 256 // 16 MiB: more than the windows and buffers between the two ends
		rounds   = 10
	)
	// No write timeouts, which would end the stalled stream and free the others.
	limits := transport.Options{CloseTimeout: closeTimeout, MaxPayloadLen: largeLimit, MaxMessageLen: largeLimit, WriteTimeout: -1}
	s := startH2Server(t, nil, &handshake.ServerOptions{Options: limits})
	t.Cleanup(handshake.CloseIdleConnections)
	opts := &handshake.DialOptions{HTTP2: handshake.HTTP2Require, TLSConfig: clientTLS(t), Options: limits}
	conns := make([]*transport.Conn, streams)
	for i := range conns {
		c, _, err := handshake.Dial(context.Background(), "wss"+strings.TrimPrefix(s.url, "https")+"/ws", opts)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.CloseNow()
		conns[i] = c
	}

	var sent sync.WaitGroup
	var written atomicInt
	sent.Add(1)
	go func() {
		defer sent.Done()
		msg := pattern(stallMsg)
		for range stallN {
			if _, err := conns[0].WriteMessage(context.Background(), frame.OpBinary, msg); err != nil {
				return
			}
			written.add(1)
		}
	}()
	// The stall has set in when the writer has made no progress for a while.
	for last, still, deadline := -1, 0, time.Now().Add(20*time.Second); still < 10; time.Sleep(50 * time.Millisecond) {
		n := written.load()
		if n == stallN {
			t.Fatalf("all %d messages went out without a reader: no stall", stallN)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer kept going for 20 s (%d messages)", n)
		}
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 1; i < streams; i++ {
		wg.Add(1)
		go func(c *transport.Conn) {
			defer wg.Done()
			for r := range rounds {
				msg := fmt.Sprintf("stream %p round %d", c, r)
				if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte(msg)); err != nil {
					errs <- err
					return
				}
				_, got, err := c.ReadMessage(ctx, nil)
				if err != nil || string(got) != msg {
					errs <- fmt.Errorf("echo %q: got %q, %v", msg, got, err)
					return
				}
			}
		}(conns[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a stream beside the stalled one: %v", err)
	}
	if n := written.load(); n == stallN {
		t.Errorf("the stalled writer finished while its reader was stopped")
	}

	for i := range stallN {
		op, got, err := conns[0].ReadMessage(ctx, nil)
		if err != nil || op != frame.OpBinary || len(got) != stallMsg {
			t.Fatalf("stalled stream, echo %d: opcode %v, %d bytes, %v", i, op, len(got), err)
		}
	}
	sent.Wait()
	for _, c := range conns {
		if err := c.Close(frame.CloseNormal, ""); err != nil {
			t.Errorf("close handshake: %v", err)
		}
	}
	reqs := s.awaitRequests(t, streams)
	for _, r := range reqs {
		if r.remote != reqs[0].remote || r.major != 2 {
			t.Fatalf("a WebSocket came from %s over %s, the first from %s: want one HTTP/2 connection", r.remote, r.proto, reqs[0].remote)
		}
	}
	checkH2Echo(t, reqs[0], reqs[0].echoed) // how each ended; the counts differ
}

// atomicInt is a counter shared between goroutines.
type atomicInt struct {
	mu sync.Mutex
	n  int
}

func (a *atomicInt) add(d int) {
	a.mu.Lock()
	a.n += d
	a.mu.Unlock()
}

func (a *atomicInt) load() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}
