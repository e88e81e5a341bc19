package handshake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// rawRequest builds a handshake request for Host example.com from a valid one. Each mod
// "Name: value" replaces the header (no value removes it) and "+Name: value" adds a line.
func rawRequest(line string, mods ...string) string {
	if line == "" {
		line = "GET /ws HTTP/1.1"
	}
	hdrs := [][2]string{
		{"Host", "example.com"},
		{"Upgrade", "websocket"},
		{"Connection", "Upgrade"},
		{"Sec-WebSocket-Key", testKey},
		{"Sec-WebSocket-Version", "13"},
	}
	for _, m := range mods {
		add := strings.HasPrefix(m, "+")
		name, value, _ := strings.Cut(strings.TrimPrefix(m, "+"), ":")
		value = strings.TrimSpace(value)
		if !add {
			kept := hdrs[:0]
			for _, h := range hdrs {
				if !strings.EqualFold(h[0], name) {
					kept = append(kept, h)
				}
			}
			hdrs = kept
			if value == "" {
				continue
			}
		}
		hdrs = append(hdrs, [2]string{name, value})
	}
	var b strings.Builder
	b.WriteString(line + "\r\n")
	for _, h := range hdrs {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// spyWriter records whether the handler hijacked the connection.
type spyWriter struct {
	http.ResponseWriter
	hijacked bool
}

func (s *spyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s.hijacked = true
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

type upgradeResult struct {
	err         error
	hijacked    bool
	subprotocol string
}

// upgradeServer starts a plain server whose handler upgrades with opts, hands the Conn (nil
// on a refusal) to use, and reports on the channel it returns what Upgrade returned, whether
// it hijacked and the subprotocol; use may replace the error with its own.
func upgradeServer(t *testing.T, opts *ServerOptions, use func(c *transport.Conn) error) (*httptest.Server, <-chan upgradeResult) {
	results := make(chan upgradeResult, 1)
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spy := &spyWriter{ResponseWriter: w}
		c, err := Upgrade(spy, r, opts)
		res := upgradeResult{err: err, hijacked: spy.hijacked}
		if c != nil {
			defer c.CloseNow()
			res.subprotocol = c.Subprotocol()
			res.err = use(c)
		}
		results <- res
	}), false)
	return srv, results
}

func TestUpgradeRequests(t *testing.T) {
	allowNull := func(r *http.Request) bool { return r.Header.Get("Origin") == "null" }
	tests := []struct {
		name       string
		line       string
		mods       []string
		opts       *ServerOptions
		wantStatus int
		wantErr    *HandshakeError
		wantHeader [2]string // a header the answer must carry
		wantProto  string
	}{
		{name: "method", line: "POST /ws HTTP/1.1", mods: []string{"Content-Length: 0"}, wantStatus: 405, wantErr: ErrMethod, wantHeader: [2]string{"Allow", "GET"}},
		{name: "HTTP/1.0", line: "GET /ws HTTP/1.0", wantStatus: 400, wantErr: ErrHTTPVersion},
		{name: "no Upgrade", mods: []string{"Upgrade:"}, wantStatus: 400, wantErr: ErrUpgradeHeader},
		{name: "garbled Upgrade", mods: []string{"Upgrade: websockets"}, wantStatus: 400, wantErr: ErrUpgradeHeader},
		{name: "no Connection", mods: []string{"Connection:"}, wantStatus: 400, wantErr: ErrConnectionHeader},
		{name: "Connection without upgrade", mods: []string{"Connection: keep-alive"}, wantStatus: 400, wantErr: ErrConnectionHeader},
		{name: "key not base64", mods: []string{"Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="}, wantStatus: 400, wantErr: ErrBadKey},
		{name: "key of 15 bytes", mods: []string{"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2Rl"}, wantStatus: 400, wantErr: ErrBadKey},
		{name: "key of 17 bytes", mods: []string{"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZmc="}, wantStatus: 400, wantErr: ErrBadKey},
		{name: "no key", mods: []string{"Sec-WebSocket-Key:"}, wantStatus: 400, wantErr: ErrNoKey},
		{name: "two keys", mods: []string{"+Sec-WebSocket-Key: " + testKey}, wantStatus: 400, wantErr: ErrBadKey},
		{name: "version 8", mods: []string{"Sec-WebSocket-Version: 8"}, wantStatus: 426, wantErr: ErrVersion, wantHeader: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "no version", mods: []string{"Sec-WebSocket-Version:"}, wantStatus: 426, wantErr: ErrVersion, wantHeader: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "cross origin", mods: []string{"Origin: https://evil.example"}, wantStatus: 403, wantErr: ErrOrigin},
		{name: "origin on another port", mods: []string{"Origin: http://example.com:8080"}, wantStatus: 403, wantErr: ErrOrigin},
		{name: "origin null", mods: []string{"Origin: null"}, wantStatus: 403, wantErr: ErrOrigin},
		{name: "origin null, pattern *", mods: []string{"Origin: null"}, opts: &ServerOptions{OriginPatterns: []string{"*"}}, wantStatus: 403, wantErr: ErrOrigin},
		{name: "two origins", mods: []string{"Origin: http://example.com", "+Origin: http://example.com"}, wantStatus: 403, wantErr: ErrOrigin},
		{name: "pattern mismatch", mods: []string{"Origin: https://evil.example"}, opts: &ServerOptions{OriginPatterns: []string{"*.good.example"}}, wantStatus: 403, wantErr: ErrOrigin},
		{name: "malformed pattern", mods: []string{"Origin: https://evil.example"}, opts: &ServerOptions{OriginPatterns: []string{"["}}, wantStatus: 500, wantErr: ErrOriginPattern},
		{name: "CheckOrigin refuses", mods: []string{"Origin: http://example.com"}, opts: &ServerOptions{CheckOrigin: func(*http.Request) bool { return false }}, wantStatus: 403, wantErr: ErrOrigin},
		{name: "malformed extensions", mods: []string{"Sec-WebSocket-Extensions: permessage-deflate; =1"}, wantStatus: 400, wantErr: ErrBadExtensions},

		{name: "valid", wantStatus: 101},
		{name: "Connection on two lines", mods: []string{"Connection: keep-alive", "+Connection: Upgrade"}, wantStatus: 101},
		{name: "Connection list", mods: []string{"Connection: keep-alive, Upgrade"}, wantStatus: 101},
		{name: "Upgrade list, other case", mods: []string{"Upgrade: h2c, WebSocket"}, wantStatus: 101},
		{name: "same origin", mods: []string{"Origin: http://EXAMPLE.com"}, wantStatus: 101},
		{name: "pattern allows", mods: []string{"Origin: https://app.Good.example"}, opts: &ServerOptions{OriginPatterns: []string{"*.good.example"}}, wantStatus: 101},
		{name: "CheckOrigin allows null", mods: []string{"Origin: null"}, opts: &ServerOptions{CheckOrigin: allowNull}, wantStatus: 101},
		{name: "extension offer ignored", mods: []string{"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}, wantStatus: 101},
		{name: "subprotocol by server preference", mods: []string{"Sec-WebSocket-Protocol: a, b", "+Sec-WebSocket-Protocol: c"}, opts: &ServerOptions{Subprotocols: []string{"c", "b"}}, wantStatus: 101, wantProto: "c"},
		{name: "no common subprotocol", mods: []string{"Sec-WebSocket-Protocol: a"}, opts: &ServerOptions{Subprotocols: []string{"b"}}, wantStatus: 101},
		{name: "SelectSubprotocol", mods: []string{"Sec-WebSocket-Protocol: a ,b"}, opts: &ServerOptions{Subprotocols: []string{"a"}, SelectSubprotocol: func(_ *http.Request, offered []string) string { return offered[1] }}, wantStatus: 101, wantProto: "b"},
		{name: "SelectSubprotocol unoffered", mods: []string{"Sec-WebSocket-Protocol: a"}, opts: &ServerOptions{SelectSubprotocol: func(*http.Request, []string) string { return "z" }}, wantStatus: 101},
		{name: "SelectSubprotocol empty offer", mods: []string{"Sec-WebSocket-Protocol: ,"}, opts: &ServerOptions{SelectSubprotocol: func(*http.Request, []string) string { panic("called") }}, wantStatus: 101},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			srv, results := upgradeServer(t, tc.opts, func(*transport.Conn) error { return nil })
			nc := sendRaw(t, srv, rawRequest(tc.line, tc.mods...))
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			res := <-results
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantHeader[0] != "" && resp.Header.Get(tc.wantHeader[0]) != tc.wantHeader[1] {
				t.Errorf("%s: %q, want %q", tc.wantHeader[0], resp.Header.Get(tc.wantHeader[0]), tc.wantHeader[1])
			}
			if tc.wantErr != nil {
				var he *HandshakeError
				if !errors.Is(res.err, tc.wantErr) || !errors.As(res.err, &he) || he.Status != tc.wantStatus {
					t.Errorf("error %v, want %v", res.err, tc.wantErr)
				}
				if res.hijacked {
					t.Error("connection hijacked on a refusal")
				}
				if string(body) != tc.wantErr.Reason+"\n" {
					t.Errorf("body %q, want %q", body, tc.wantErr.Reason+"\n")
				}
				if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				return
			}
			if res.err != nil || !res.hijacked {
				t.Fatalf("Upgrade: %v (hijacked %v)", res.err, res.hijacked)
			}
			if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
				t.Errorf("Sec-WebSocket-Accept %q", got)
			}
			if !hasToken(resp.Header["Upgrade"], "websocket") || !hasToken(resp.Header["Connection"], "upgrade") {
				t.Errorf("answer headers %v", resp.Header)
			}
			if _, ok := resp.Header["Sec-Websocket-Extensions"]; ok {
				t.Error("answer carries Sec-WebSocket-Extensions")
			}
			protos := resp.Header["Sec-Websocket-Protocol"]
			if tc.wantProto == "" && len(protos) != 0 || tc.wantProto != "" && (len(protos) != 1 || protos[0] != tc.wantProto) {
				t.Errorf("Sec-WebSocket-Protocol %q, want %q", protos, tc.wantProto)
			}
			if res.subprotocol != tc.wantProto {
				t.Errorf("Conn.Subprotocol %q, want %q", res.subprotocol, tc.wantProto)
			}
		})
	}
}

// TestUpgradeRequestBody sends upgrade requests with and without a body over TCP, each followed
// by a text frame: in the body when there is one, right behind the request otherwise. A request
// with a body must be refused with 400 and no hijack, so the frame hidden in its body is never
// read as a frame (and echoed); one without must be upgraded and its frame echoed.
func TestUpgradeRequestBody(t *testing.T) {
	hidden := string(frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}}, []byte("hidden")))
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)
	cl := fmt.Sprintf("Content-Length: %d", len(hidden))
	tests := []struct {
		name    string
		mods    []string
		after   string // the bytes behind the request's head
		refused bool
	}{
		{name: "Content-Length", mods: []string{cl}, after: hidden, refused: true},
		{name: "chunked", mods: []string{"Transfer-Encoding: chunked"}, after: chunked, refused: true},
		{name: "Content-Length and chunked", mods: []string{cl, "Transfer-Encoding: chunked"}, after: chunked, refused: true},
		{name: "Content-Length: 0", mods: []string{"Content-Length: 0"}, after: hidden},
		{name: "no body", after: hidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			// Echo the first frame, as a real application would act on it.
			srv, results := upgradeServer(t, nil, func(c *transport.Conn) error {
				f, err := c.RecvFrame(5 * time.Second)
				if err == nil {
					_, err = c.SendText(f.Payload)
				}
				return err
			})
			nc := sendRaw(t, srv, rawRequest("", tc.mods...)+tc.after)
			br := bufio.NewReader(nc)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.refused {
				if resp.StatusCode != 101 {
					t.Fatalf("status %d, want 101", resp.StatusCode)
				}
				f, err := frame.ReadFrame(br, 1<<10)
				if err != nil || f.Opcode != frame.OpText || string(f.Payload) != "hidden" {
					t.Fatalf("echo %v %q, %v", f.Opcode, f.Payload, err)
				}
				if res := <-results; res.err != nil || !res.hijacked {
					t.Fatalf("Upgrade: %v (hijacked %v)", res.err, res.hijacked)
				}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 400 || string(body) != ErrRequestBody.Reason+"\n" {
				t.Fatalf("status %d, body %q; want 400, %q", resp.StatusCode, body, ErrRequestBody.Reason+"\n")
			}
			res := <-results
			if !errors.Is(res.err, ErrRequestBody) || res.hijacked {
				t.Fatalf("Upgrade: %v (hijacked %v), want ErrRequestBody without hijack", res.err, res.hijacked)
			}
			// The handler has returned; whatever else the server sends until it sees our end
			// of the stream must not be the echo.
			nc.(*net.TCPConn).CloseWrite()
			rest, err := io.ReadAll(br)
			if err != nil || strings.Contains(string(rest), "hidden") {
				t.Fatalf("after the refusal: %q, %v", rest, err)
			}
		})
	}
}

func TestCheckRequestNoHost(t *testing.T) {
	r := newRequestForTest()
	r.Host = ""
	if _, err := checkRequest(r, &defaultServerOptions); err != ErrNoHost {
		t.Fatalf("got %v, want ErrNoHost", err)
	}
}

// TestCheckRequestBody checks the body rule on requests net/http never hands a handler (an
// unknown length without Transfer-Encoding) and that it is kept to HTTP/1.x.
func TestCheckRequestBody(t *testing.T) {
	tests := []struct {
		name   string
		major  int
		length int64
		te     []string
		want   *HandshakeError
	}{
		{name: "no body", major: 1},
		{name: "length 5", major: 1, length: 5, want: ErrRequestBody},
		{name: "unknown length", major: 1, length: -1, want: ErrRequestBody},
		{name: "chunked", major: 1, length: -1, te: []string{"chunked"}, want: ErrRequestBody},
		{name: "Transfer-Encoding with length 0", major: 1, te: []string{"identity"}, want: ErrRequestBody},
		{name: "HTTP/2 stream", major: 2, length: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequestForTest()
			r.ProtoMajor, r.ProtoMinor = tc.major, 0
			if tc.major == 1 {
				r.ProtoMinor = 1
			}
			r.ContentLength, r.TransferEncoding = tc.length, tc.te
			if _, err := checkRequest(r, &defaultServerOptions); err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestUpgradeFirstFrame checks that a frame the client sent right behind its request, read by
// net/http into its buffer, reaches the Conn.
func TestUpgradeFirstFrame(t *testing.T) {
	masked := frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}}, []byte("first"))

	t.Run("buffered", func(t *testing.T) {
		w := newHijackWriter(string(masked))
		c, err := Upgrade(w, newRequestForTest(), nil)
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.RecvFrame(time.Second)
		if err != nil || string(f.Payload) != "first" {
			t.Fatalf("RecvFrame: %q, %v", f.Payload, err)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		got := make(chan string, 1)
		srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := Upgrade(w, r, nil)
			if err != nil {
				got <- err.Error()
				return
			}
			defer c.CloseNow()
			f, err := c.RecvFrame(5 * time.Second)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(f.Payload)
		}), false)
		sendRaw(t, srv, rawRequest("")+string(masked))
		if s := <-got; s != "first" {
			t.Fatalf("server got %q", s)
		}
	})
}

// TestUpgradeWrapped runs Upgrade behind middleware that wraps the ResponseWriter: with an
// Unwrap method it works, without one it fails cleanly with a 500.
func TestUpgradeWrapped(t *testing.T) {
	type opaque struct{ http.ResponseWriter } // no Unwrap, no Hijack
	wrapWith := func(wrap func(http.ResponseWriter) http.ResponseWriter, errs chan<- error) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := Upgrade(wrap(w), r, nil)
			if c != nil {
				c.SendText([]byte("hello"))
				c.Close(frame.CloseNormal, "")
			}
			errs <- err
		})
	}

	t.Run("Unwrap", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		errs := make(chan error, 1)
		srv := quietServer(t, wrapWith(func(w http.ResponseWriter) http.ResponseWriter { return &unwrappingWriter{w} }, errs), false)
		c, _, err := Dial(t.Context(), wsURL(srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		f, err := c.RecvFrame(5 * time.Second)
		if err != nil || string(f.Payload) != "hello" {
			t.Fatalf("RecvFrame: %q, %v", f.Payload, err)
		}
		c.Close(frame.CloseNormal, "")
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("opaque", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		errs := make(chan error, 1)
		srv := quietServer(t, wrapWith(func(w http.ResponseWriter) http.ResponseWriter { return opaque{w} }, errs), false)
		_, resp, err := Dial(t.Context(), wsURL(srv), nil)
		var se *StatusError
		if !errors.As(err, &se) || resp == nil || resp.StatusCode != 500 {
			t.Fatalf("Dial: %v", err)
		}
		if string(se.Body) != ErrNotHijackable.Reason+"\n" {
			t.Errorf("body %q", se.Body)
		}
		if err := <-errs; !errors.Is(err, ErrNotHijackable) || !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Upgrade: %v", err)
		}
	})
}

// unwrappingWriter wraps a ResponseWriter as logging middleware does, hiding its Hijack method
// but offering Unwrap.
type unwrappingWriter struct{ w http.ResponseWriter }

func (u *unwrappingWriter) Header() http.Header         { return u.w.Header() }
func (u *unwrappingWriter) Write(p []byte) (int, error) { return u.w.Write(p) }
func (u *unwrappingWriter) WriteHeader(status int)      { u.w.WriteHeader(status) }
func (u *unwrappingWriter) Unwrap() http.ResponseWriter { return u.w }

func TestUpgradeHijackFailures(t *testing.T) {
	t.Run("already hijacked", func(t *testing.T) {
		w := newHijackWriter("")
		w.hijackErr = http.ErrHijacked
		_, err := Upgrade(w, newRequestForTest(), nil)
		if !errors.Is(err, ErrNotHijackable) || !errors.Is(err, http.ErrHijacked) {
			t.Fatalf("got %v", err)
		}
		if w.status != 0 || w.body.Len() != 0 {
			t.Errorf("wrote %d %q to a hijacked connection", w.status, w.body.Bytes())
		}
	})
	t.Run("write fails", func(t *testing.T) {
		w := newHijackWriter("")
		w.conn.writeErr = errors.New("broken pipe")
		_, err := Upgrade(w, newRequestForTest(), nil)
		if err == nil || !strings.Contains(err.Error(), "broken pipe") {
			t.Fatalf("got %v", err)
		}
		if !w.conn.closed {
			t.Error("connection left open")
		}
	})
	t.Run("no bufio", func(t *testing.T) {
		w := newHijackWriter("")
		w.brw = nil
		c, err := Upgrade(w, newRequestForTest(), nil)
		if err != nil || c == nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(w.conn.out.Bytes(), []byte("HTTP/1.1 101 Switching Protocols\r\n")) {
			t.Errorf("wrote %q", w.conn.out.Bytes())
		}
	})
}

func TestUpgradeResponseHeaders(t *testing.T) {
	w := newHijackWriter("")
	opts := &ServerOptions{
		Options: transport.Options{MaxPayloadLen: 1000},
		Header: http.Header{
			"Set-Cookie":               {"a=1", "b=2"},
			"X-Split":                  {"x\r\nInjected: yes"},
			"Sec-Websocket-Extensions": {"permessage-deflate"},
			"Connection":               {"close"},
			"Bad Name":                 {"v"},
		},
	}
	c, err := Upgrade(w, newRequestForTest(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxPayloadLen() != 1000 {
		t.Errorf("MaxPayloadLen %d, want 1000", c.MaxPayloadLen())
	}
	resp, err := http.ReadResponse(bufio.NewReader(&w.conn.out), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Header
	switch {
	case resp.StatusCode != 101:
		t.Errorf("status %d", resp.StatusCode)
	case len(h["Set-Cookie"]) != 2:
		t.Errorf("Set-Cookie %q", h["Set-Cookie"])
	case h.Get("X-Split") != "x  Injected: yes" || h.Get("Injected") != "":
		t.Errorf("header injection: %v", h)
	case h.Get("Sec-Websocket-Extensions") != "" || h.Get("Connection") != "Upgrade" || h.Get("Bad Name") != "":
		t.Errorf("reserved or invalid headers passed: %v", h)
	}
	if len(opts.Header) != 5 || opts.MaxPayloadLen != 1000 {
		t.Error("opts modified")
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455 section 1.3.
	if got := string(appendAccept(nil, testKey)); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("got %q", got)
	}
	if n := testing.AllocsPerRun(100, func() {
		var buf [28]byte
		appendAccept(buf[:0], testKey)
	}); n != 0 {
		t.Errorf("appendAccept allocates %v times", n)
	}
}

func TestCheckRequestAllocs(t *testing.T) {
	r := newRequestForTest()
	r.Header.Set("Origin", "https://app.good.example")
	r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
	r.Header.Set("Sec-WebSocket-Protocol", "a, b")
	opts := &ServerOptions{OriginPatterns: []string{"*.good.example"}, Subprotocols: []string{"b"}}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := checkRequest(r, opts); err != nil {
			t.Fatal(err)
		}
		if selectSubprotocol(r, opts) != "b" {
			t.Fatal("subprotocol")
		}
	}); n != 0 {
		t.Errorf("checkRequest allocates %v times", n)
	}
}

// BenchmarkUpgrade measures Upgrade itself: the request is reused and the hijack returns a
// prepared in-memory connection, so neither TCP nor net/http's hijack is counted.
func BenchmarkUpgrade(b *testing.B) {
	r := newRequestForTest()
	conn := &fakeConn{}
	br := bufio.NewReader(conn)
	bw := bufio.NewWriter(conn)
	w := &hijackWriter{header: http.Header{}, conn: conn, brw: bufio.NewReadWriter(br, bw)}
	b.ReportAllocs()
	for b.Loop() {
		conn.out.Reset()
		bw.Reset(conn)
		if _, err := Upgrade(w, r, nil); err != nil {
			b.Fatal(err)
		}
	}
}
