package handshake

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// echoServer upgrades with opts, echoes one text message with a prefix and closes; errs gets
// the outcome of each connection.
func echoServer(t *testing.T, opts *ServerOptions, tls bool) (*httptest.Server, <-chan error) {
	ch := make(chan error, 1)
	srv := quietServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, opts)
		if err != nil {
			ch <- err
			return
		}
		defer c.CloseNow()
		f, err := c.RecvFrame(5 * time.Second)
		if err == nil {
			_, err = c.SendText(append([]byte(c.Subprotocol()+" echo: "), f.Payload...))
		}
		if err == nil {
			err = c.Close(frame.CloseNormal, "")
		}
		ch <- err
	}), tls)
	return srv, ch
}

// roundTrip sends "hello" on c and checks the echo.
func roundTrip(t *testing.T, c *transport.Conn, errs <-chan error, want string) {
	t.Helper()
	if _, err := c.SendText([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	f, err := c.RecvFrame(5 * time.Second)
	if err != nil || f.Opcode != frame.OpText || string(f.Payload) != want {
		t.Fatalf("RecvFrame: %v %q, %v; want %q", f.Opcode, f.Payload, err, want)
	}
	f, err = c.RecvFrame(5 * time.Second)
	if err != nil || f.Opcode != frame.OpClose {
		t.Fatalf("RecvFrame: %v, %v; want the close frame", f.Opcode, err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("server: %v", err)
	}
}

func TestDialRoundTrip(t *testing.T) {
	wstest.CheckGoroutines(t)
	srv, errs := echoServer(t, &ServerOptions{Subprotocols: []string{"chat.v2", "chat"}}, false)
	u := wsURL(srv)
	c, resp, err := Dial(t.Context(), u+"/echo?room=1", &DialOptions{Subprotocols: []string{"chat", "chat.v2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.StatusCode != 101 || c.Subprotocol() != "chat.v2" || c.Role() != transport.Client {
		t.Fatalf("status %d, subprotocol %q, role %v", resp.StatusCode, c.Subprotocol(), c.Role())
	}
	if c.RemoteAddr() == nil || c.RemoteAddr().String() != strings.TrimPrefix(u, "ws://") {
		t.Errorf("RemoteAddr %v", c.RemoteAddr())
	}
	roundTrip(t, c, errs, "chat.v2 echo: hello")
}

func TestDialTLS(t *testing.T) {
	wstest.CheckGoroutines(t)
	srv, errs := echoServer(t, nil, true)
	u := wsURL(srv)
	t.Run("untrusted", func(t *testing.T) {
		_, _, err := Dial(t.Context(), u, nil)
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("got %v, want a certificate error", err)
		}
	})
	t.Run("RootCAs", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		cfg := &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}}
		c, _, err := Dial(t.Context(), u, &DialOptions{TLSConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if cfg.ServerName != "" || len(cfg.NextProtos) != 2 || cfg.NextProtos[0] != "h2" {
			t.Errorf("TLSConfig modified: %q %q", cfg.ServerName, cfg.NextProtos)
		}
		roundTrip(t, c, errs, " echo: hello")
	})
	t.Run("InsecureSkipVerify", func(t *testing.T) {
		c, _, err := Dial(t.Context(), u, &DialOptions{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		roundTrip(t, c, errs, " echo: hello")
	})
}

func TestDialTLSState(t *testing.T) {
	wstest.CheckGoroutines(t)
	tlsSrv, tlsErrs := echoServer(t, nil, true)
	plainSrv, plainErrs := echoServer(t, nil, false)
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	tests := []struct {
		name     string
		srv      *httptest.Server
		errs     <-chan error
		protos   []string // the client's ALPN offer
		tls      bool     // resp.TLS is set
		protocol string   // resp.TLS.NegotiatedProtocol
	}{
		{"ws", plainSrv, plainErrs, nil, false, ""},
		{"wss without ALPN", tlsSrv, tlsErrs, nil, true, ""},
		{"wss with http/1.1", tlsSrv, tlsErrs, []string{"http/1.1"}, true, "http/1.1"},
		{"wss with h2 first", tlsSrv, tlsErrs, []string{"h2", "http/1.1"}, true, "http/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: pool, NextProtos: tt.protos}
			c, resp, err := Dial(t.Context(), wsURL(tt.srv), &DialOptions{TLSConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if (resp.TLS != nil) != tt.tls {
				t.Fatalf("resp.TLS = %v, want set: %v", resp.TLS, tt.tls)
			}
			if resp.TLS != nil {
				st := resp.TLS
				if !st.HandshakeComplete || st.NegotiatedProtocol != tt.protocol ||
					len(st.PeerCertificates) == 0 || !st.PeerCertificates[0].Equal(tt.srv.Certificate()) {
					t.Fatalf("TLS state: complete %v, protocol %q (want %q), %d certificates",
						st.HandshakeComplete, st.NegotiatedProtocol, tt.protocol, len(st.PeerCertificates))
				}
			}
			roundTrip(t, c, tt.errs, " echo: hello")
		})
	}
}

func TestDialResponses(t *testing.T) {
	tests := []struct {
		name   string
		answer func(r *http.Request) string
		opts   *DialOptions
		check  func(t *testing.T, err error, resp *http.Response)
	}{
		{
			name:   "200 with body",
			answer: func(*http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nno ws\r\n" },
			check: func(t *testing.T, err error, resp *http.Response) {
				var se *StatusError
				if !errors.As(err, &se) || string(se.Body) != "no ws\r\n" || se.Response != resp || resp.StatusCode != 200 {
					t.Fatalf("got %v", err)
				}
				if b, _ := io.ReadAll(resp.Body); string(b) != "no ws\r\n" {
					t.Errorf("resp.Body %q", b)
				}
			},
		},
		{
			name: "403 with long body",
			answer: func(*http.Request) string {
				return "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n" + strings.Repeat("x", 5000)
			},
			check: func(t *testing.T, err error, resp *http.Response) {
				var se *StatusError
				if !errors.As(err, &se) || len(se.Body) != maxErrorBody || resp.StatusCode != 403 {
					t.Fatalf("got %v", err)
				}
			},
		},
		{
			name: "101 without Upgrade",
			answer: func(r *http.Request) string {
				return strings.Replace(switching(r, ""), "Upgrade: websocket\r\n", "", 1)
			},
			check: wantErr(ErrResponseUpgrade),
		},
		{
			name: "101 without Connection",
			answer: func(r *http.Request) string {
				return strings.Replace(switching(r, ""), "Connection: Upgrade\r\n", "", 1)
			},
			check: wantErr(ErrResponseConnection),
		},
		{
			name: "wrong accept",
			answer: func(r *http.Request) string {
				return strings.Replace(switching(r, ""), acceptFor(r), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 1)
			},
			check: wantErr(ErrAccept),
		},
		{
			name:   "unoffered subprotocol",
			answer: func(r *http.Request) string { return switching(r, "Sec-WebSocket-Protocol: chat\r\n") },
			check:  wantErr(ErrSubprotocol),
		},
		{
			name:   "subprotocol not among offers",
			answer: func(r *http.Request) string { return switching(r, "Sec-WebSocket-Protocol: b\r\n") },
			opts:   &DialOptions{Subprotocols: []string{"a"}},
			check:  wantErr(ErrSubprotocol),
		},
		{
			name: "two subprotocols",
			answer: func(r *http.Request) string {
				return switching(r, "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: a\r\n")
			},
			opts:  &DialOptions{Subprotocols: []string{"a"}},
			check: wantErr(ErrSubprotocol),
		},
		{
			name:   "unoffered extension",
			answer: func(r *http.Request) string { return switching(r, "Sec-WebSocket-Extensions: permessage-deflate\r\n") },
			check:  wantErr(ErrExtension),
		},
		{
			name:   "malformed extension",
			answer: func(r *http.Request) string { return switching(r, "Sec-WebSocket-Extensions: ;;\r\n") },
			check:  wantErr(ErrExtension),
		},
		{
			name:   "garbage",
			answer: func(*http.Request) string { return "garbage\r\n\r\n" },
			check:  wantErr(ErrBadResponse),
		},
		{
			name:   "close before response",
			answer: func(*http.Request) string { return "" },
			check:  wantErr(io.ErrUnexpectedEOF),
		},
		{
			name: "empty extension header and chosen subprotocol",
			answer: func(r *http.Request) string {
				return switching(r, "Sec-WebSocket-Extensions: \r\nSec-WebSocket-Protocol: b\r\n")
			},
			opts:  &DialOptions{Subprotocols: []string{"a", "b"}},
			check: wantErr(nil),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			u := cannedServer(t, tc.answer)
			c, resp, err := Dial(t.Context(), u, tc.opts)
			if c != nil {
				c.CloseNow()
			}
			if err == nil && resp == nil {
				t.Fatal("no response")
			}
			tc.check(t, err, resp)
		})
	}
}

func wantErr(target error) func(*testing.T, error, *http.Response) {
	return func(t *testing.T, err error, _ *http.Response) {
		t.Helper()
		if target == nil && err != nil || !errors.Is(err, target) {
			t.Fatalf("got %v, want %v", err, target)
		}
	}
}

// TestDialFirstFrame checks that a frame the server sent in the same write as its 101 answer
// reaches the Conn.
func TestDialFirstFrame(t *testing.T) {
	wstest.CheckGoroutines(t)
	u := cannedServer(t, func(r *http.Request) string {
		return switching(r, "") + string(frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpBinary}, []byte("first")))
	})
	c, _, err := Dial(t.Context(), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	f, err := c.RecvFrame(5 * time.Second)
	if err != nil || string(f.Payload) != "first" {
		t.Fatalf("RecvFrame: %q, %v", f.Payload, err)
	}
}

// TestDialRequest checks what Dial puts on the wire and where it connects, through the NetDial
// hook and an in-memory pipe.
func TestDialRequest(t *testing.T) {
	tests := []struct {
		uri      string
		opts     DialOptions
		wantAddr string
		wantHost string
		wantURI  string
		wantHdr  [2]string
	}{
		{uri: "ws://example.com", wantAddr: "example.com:80", wantHost: "example.com", wantURI: "/"},
		{uri: "WS://Example.com:8080/a/b?c=d&e#frag", wantAddr: "Example.com:8080", wantHost: "Example.com:8080", wantURI: "/a/b?c=d&e"},
		{uri: "ws://user:pw@[::1]:9000/x", wantAddr: "[::1]:9000", wantHost: "[::1]:9000", wantURI: "/x"},
		{uri: "ws://[::1]/", wantAddr: "[::1]:80", wantHost: "[::1]", wantURI: "/"},
		{uri: "ws://10.0.0.1/x", opts: DialOptions{Header: http.Header{"host": {"virtual.example"}}}, wantAddr: "10.0.0.1:80", wantHost: "virtual.example", wantURI: "/x"},
		{uri: "ws://example.com/", opts: DialOptions{Origin: "https://page.example"}, wantAddr: "example.com:80", wantHost: "example.com", wantURI: "/", wantHdr: [2]string{"Origin", "https://page.example"}},
		{uri: "ws://example.com/", opts: DialOptions{Header: http.Header{"Authorization": {"Bearer x"}}}, wantAddr: "example.com:80", wantHost: "example.com", wantURI: "/", wantHdr: [2]string{"Authorization", "Bearer x"}},
		{uri: "ws://example.com/", opts: DialOptions{Subprotocols: []string{"a", "b"}}, wantAddr: "example.com:80", wantHost: "example.com", wantURI: "/", wantHdr: [2]string{"Sec-WebSocket-Protocol", "a, b"}},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			var (
				addr string
				wg   sync.WaitGroup
				req  *http.Request
			)
			defer wg.Wait()
			opts := tc.opts
			opts.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
			opts.NetDial = func(ctx context.Context, network, a string) (net.Conn, error) {
				addr = a
				client, server := net.Pipe()
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer server.Close()
					r, err := http.ReadRequest(bufio.NewReader(server))
					if err != nil {
						return
					}
					req = r
					io.WriteString(server, switching(r, ""))
					io.Copy(io.Discard, server)
				}()
				return client, nil
			}
			c, _, err := Dial(t.Context(), tc.uri, &opts)
			if err != nil {
				t.Fatal(err)
			}
			c.CloseNow()
			wg.Wait()
			if addr != tc.wantAddr || req.Host != tc.wantHost || req.RequestURI != tc.wantURI {
				t.Errorf("dialed %q with Host %q for %q; want %q, %q, %q", addr, req.Host, req.RequestURI, tc.wantAddr, tc.wantHost, tc.wantURI)
			}
			h := req.Header
			key, _ := base64.StdEncoding.DecodeString(h.Get("Sec-WebSocket-Key"))
			if h.Get("Upgrade") != "websocket" || h.Get("Connection") != "Upgrade" || h.Get("Sec-WebSocket-Version") != "13" || len(key) != 16 {
				t.Errorf("handshake headers %v", h)
			}
			if tc.wantHdr[0] != "" && h.Get(tc.wantHdr[0]) != tc.wantHdr[1] {
				t.Errorf("%s: %q, want %q", tc.wantHdr[0], h.Get(tc.wantHdr[0]), tc.wantHdr[1])
			}
			if _, ok := h["Sec-Websocket-Extensions"]; ok {
				t.Error("extensions offered")
			}
		})
	}
}

func TestDialBadOptions(t *testing.T) {
	tests := []struct {
		uri  string
		opts *DialOptions
		want error
	}{
		{"http://example.com/", nil, ErrURL},
		{"example.com/ws", nil, ErrURL},
		{"ws:///path", nil, ErrURL},
		{"ws://[::1", nil, ErrURL},
		{"ws://example.com/", &DialOptions{Header: http.Header{"Upgrade": {"h2c"}}}, ErrDialOptions},
		{"ws://example.com/", &DialOptions{Header: http.Header{"connection": {"close"}}}, ErrDialOptions},
		{"ws://example.com/", &DialOptions{Header: http.Header{"Sec-WebSocket-Extensions": {"x"}}}, ErrDialOptions},
		{"ws://example.com/", &DialOptions{Header: http.Header{"Origin": {"x"}}}, ErrDialOptions},
		{"ws://example.com/", &DialOptions{Subprotocols: []string{"a b"}}, ErrDialOptions},
		{"ws://example.com/", &DialOptions{Proxy: func(*http.Request) (*url.URL, error) { return url.Parse("socks5://p:1080") }}, ErrProxyScheme},
		{"ws://example.com/", &DialOptions{Proxy: func(*http.Request) (*url.URL, error) { return nil, os.ErrPermission }}, os.ErrPermission},
		{"ws://example.com/", &DialOptions{NetDial: func(context.Context, string, string) (net.Conn, error) { return nil, os.ErrPermission }}, os.ErrPermission},
	}
	for _, tc := range tests {
		_, resp, err := Dial(t.Context(), tc.uri, tc.opts)
		if !errors.Is(err, tc.want) || resp != nil {
			t.Errorf("Dial(%q): %v, want %v", tc.uri, err, tc.want)
		}
	}
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	ln := listen(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	return ln.Addr().String()
}

func TestDialTimeout(t *testing.T) {
	wstest.CheckGoroutines(t)
	addr := silentServer(t)
	for _, scheme := range []string{"ws", "wss"} {
		start := time.Now()
		_, _, err := Dial(t.Context(), scheme+"://"+addr, &DialOptions{Timeout: 200 * time.Millisecond})
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s: Dial took %v", scheme, elapsed)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: got %v, want a deadline error", scheme, err)
		}
	}
}

func TestDialCancel(t *testing.T) {
	wstest.CheckGoroutines(t)
	addr := silentServer(t)
	for _, scheme := range []string{"ws", "wss"} {
		ctx, cancel := context.WithCancel(t.Context())
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, _, err := Dial(ctx, scheme+"://"+addr, &DialOptions{Timeout: -1})
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s: Dial took %v", scheme, elapsed)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: got %v, want context.Canceled", scheme, err)
		}
		timer.Stop()
		cancel()
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := Dial(ctx, "ws://"+addr, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before Dial: %v", err)
	}
}

// connectProxy is an HTTP CONNECT proxy on 127.0.0.1. It refuses with 407 when auth is set
// and the request does not carry it, and records the targets asked for.
type connectProxy struct {
	addr    string
	auth    string
	mu      sync.Mutex
	targets []string
}

func newConnectProxy(t *testing.T, auth string) *connectProxy {
	p := &connectProxy{auth: auth}
	ln := listen(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		r, err := http.ReadRequest(br)
		if err != nil || r.Method != http.MethodConnect {
			return
		}
		p.mu.Lock()
		p.targets = append(p.targets, r.Host)
		p.mu.Unlock()
		if p.auth != "" && r.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(p.auth)) {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
			return
		}
		target, err := net.Dial("tcp", r.Host)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		defer target.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() {
			io.Copy(target, br)
			target.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, target)
		c.Close()
		<-done
	})
	p.addr = ln.Addr().String()
	return p
}

func (p *connectProxy) use(userinfo string) func(*http.Request) (*url.URL, error) {
	return func(*http.Request) (*url.URL, error) { return url.Parse("http://" + userinfo + p.addr) }
}

func TestDialProxy(t *testing.T) {
	wstest.CheckGoroutines(t)
	for _, secure := range []bool{false, true} {
		srv, errs := echoServer(t, nil, secure)
		u := wsURL(srv)
		p := newConnectProxy(t, "user:pa ss")
		c, _, err := Dial(t.Context(), u, &DialOptions{Proxy: p.use("user:pa%20ss@"), InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("secure %v: %v", secure, err)
		}
		roundTrip(t, c, errs, " echo: hello")
		c.CloseNow()
		target := u[strings.Index(u, "//")+2:]
		if len(p.targets) != 1 || p.targets[0] != target {
			t.Errorf("proxy asked for %q, want %q", p.targets, target)
		}

		_, resp, err := Dial(t.Context(), u, &DialOptions{Proxy: p.use(""), InsecureSkipVerify: true})
		var pe *ProxyError
		if !errors.As(err, &pe) || pe.Response.StatusCode != 407 || resp != nil {
			t.Errorf("without credentials: %v", err)
		}
	}
}

func TestDialProxyData(t *testing.T) {
	wstest.CheckGoroutines(t)
	ln := listen(t, func(c net.Conn) {
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n")
		io.Copy(io.Discard, c)
	})
	_, _, err := Dial(t.Context(), "ws://example.com/", &DialOptions{
		Proxy: func(*http.Request) (*url.URL, error) { return url.Parse("http://" + ln.Addr().String()) },
	})
	if !errors.Is(err, ErrProxyData) {
		t.Fatalf("got %v", err)
	}
}

// floodServer answers every handshake request with head followed by fill, over and over: an
// answer whose head never ends. It stops when the client hangs up, after 16 MiB (so that a
// client without a bound fails at once rather than swallowing memory until its timeout) or
// after 20 s.
func floodServer(t *testing.T, head string, fill []byte) string {
	ln := listen(t, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		for sent := 0; sent < 16<<20; sent += len(fill) {
			if _, err := c.Write(fill); err != nil {
				return
			}
		}
	})
	return "ws://" + ln.Addr().String()
}

// repeat returns n bytes of line over and over, with the %d in line, if any, counting up so
// that header names differ.
func repeat(line string, n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		if strings.Contains(line, "%d") {
			b = fmt.Appendf(b, line, i)
		} else {
			b = append(b, line...)
		}
	}
	return b[:n]
}

// allocated returns the bytes allocated on the heap so far by the whole process. The live
// heap cannot grow by more than this figure does, whatever the collector does meanwhile, so
// its growth over a Dial bounds the Dial's heap growth from above (the flood server, in the
// same process, writes from one buffer and adds little).
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestDialHeadFlood checks that an answer whose head never ends (endless header lines, one
// endless header line or an endless status line) fails Dial with a HeadTooLargeError that
// names the bound, and that Dial's heap growth stays at most 1 MiB meanwhile.
func TestDialHeadFlood(t *testing.T) {
	const maxGrowth = 1 << 20
	tests := []struct {
		name      string
		head      string
		fill      []byte
		maxHead   int
		wantLimit int
	}{
		{name: "endless headers", head: "HTTP/1.1 101 Switching Protocols\r\n", fill: repeat("X-Flood-%d: a\r\n", 32<<10), wantLimit: DefaultMaxResponseHeaderBytes},
		{name: "endless header line", head: "HTTP/1.1 101 Switching Protocols\r\nX-Flood: ", fill: repeat("a", 32<<10), wantLimit: DefaultMaxResponseHeaderBytes},
		{name: "endless status line", head: "HTTP/1.1 101 ", fill: repeat("a", 32<<10), wantLimit: DefaultMaxResponseHeaderBytes},
		{name: "endless headers, bound 4 KiB", head: "HTTP/1.1 101 Switching Protocols\r\n", fill: repeat("X-Flood-%d: a\r\n", 32<<10), maxHead: 4 << 10, wantLimit: 4 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			u := floodServer(t, tc.head, tc.fill)
			opts := &DialOptions{MaxResponseHeaderBytes: tc.maxHead}
			runtime.GC()
			before := allocated()
			c, resp, err := Dial(t.Context(), u, opts)
			growth := allocated() - before
			if c != nil {
				c.CloseNow()
			}
			t.Logf("heap growth at most %d bytes (%.1f KiB): %v", growth, float64(growth)/1024, err)
			var he *HeadTooLargeError
			if !errors.As(err, &he) || he.Limit != tc.wantLimit || !errors.Is(err, ErrHeadTooLarge) || resp != nil {
				t.Errorf("got %v, %v; want a HeadTooLargeError with Limit %d", resp, err, tc.wantLimit)
			}
			if growth > maxGrowth {
				t.Errorf("heap grew by up to %d bytes, more than %d", growth, maxGrowth)
			}
		})
	}
}

// TestDialHeadBound checks answers on either side of the bound: a large but legal head passes
// the default bound with the frame behind it, a head exactly at the bound passes and one byte
// more fails, a negative bound lets anything through, and the body of a non-101 answer is
// still read once its head fitted.
func TestDialHeadBound(t *testing.T) {
	first := frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpBinary}, []byte("first"))
	// big returns whole header lines, about n bytes of them.
	big := func(n int) string {
		var b []byte
		for i := 0; len(b) < n-64; i++ {
			b = fmt.Appendf(b, "X-Big-%d: 0123456789abcdef0123456789abcdef\r\n", i)
		}
		return string(b)
	}
	// The accept value has the same length for every key, so any request gives the length.
	headLen := func(extra string) int { return len(switching(newRequestForTest(), extra)) }
	tests := []struct {
		name      string
		extra     string // header lines of the 101 answer
		answer    string // a whole answer instead of a 101
		maxHead   int
		wantLimit int // 0 for success
		wantBody  string
	}{
		{name: "40 KiB of headers, default bound", extra: big(40 << 10)},
		{name: "100 KiB of headers, default bound", extra: big(100 << 10), wantLimit: DefaultMaxResponseHeaderBytes},
		{name: "100 KiB of headers, no bound", extra: big(100 << 10), maxHead: -1},
		{name: "100 KiB of headers, bound 128 KiB", extra: big(100 << 10), maxHead: 128 << 10},
		{name: "head at the bound", extra: big(1000), maxHead: headLen(big(1000))},
		{name: "head one byte over the bound", extra: big(1000), maxHead: headLen(big(1000)) - 1, wantLimit: headLen(big(1000)) - 1},
		{name: "status line over the bound", answer: "HTTP/1.1 101 " + strings.Repeat("a", 200) + "\r\n\r\n", maxHead: 100, wantLimit: 100},
		{name: "403 head at the bound, body behind it", answer: "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno", maxHead: len("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n"), wantBody: "no"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			u := cannedServer(t, func(r *http.Request) string {
				if tc.answer != "" {
					return tc.answer
				}
				return switching(r, tc.extra) + string(first)
			})
			c, resp, err := Dial(t.Context(), u, &DialOptions{MaxResponseHeaderBytes: tc.maxHead})
			if c != nil {
				defer c.CloseNow()
			}
			switch {
			case tc.wantLimit != 0:
				var he *HeadTooLargeError
				if !errors.As(err, &he) || he.Limit != tc.wantLimit || resp != nil {
					t.Fatalf("got %v; want a HeadTooLargeError with Limit %d", err, tc.wantLimit)
				}
			case tc.wantBody != "":
				var se *StatusError
				if !errors.As(err, &se) || string(se.Body) != tc.wantBody {
					t.Fatalf("got %v; want a StatusError with body %q", err, tc.wantBody)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if got, want := len(resp.Header), 3+strings.Count(tc.extra, "\r\n"); got != want {
					t.Errorf("%d headers, want %d", got, want)
				}
				f, err := c.RecvFrame(5 * time.Second)
				if err != nil || string(f.Payload) != "first" {
					t.Fatalf("RecvFrame: %q, %v", f.Payload, err)
				}
			}
		})
	}
}

// TestDialProxyHeadFlood checks that the bound holds for the proxy's answer to CONNECT too.
func TestDialProxyHeadFlood(t *testing.T) {
	wstest.CheckGoroutines(t)
	u := floodServer(t, "HTTP/1.1 200 Connection established\r\n", repeat("X-Flood-%d: a\r\n", 32<<10))
	_, _, err := Dial(t.Context(), "ws://example.com/", &DialOptions{
		Proxy:                  func(*http.Request) (*url.URL, error) { return url.Parse("http" + strings.TrimPrefix(u, "ws")) },
		MaxResponseHeaderBytes: 8 << 10,
	})
	var he *HeadTooLargeError
	if !errors.As(err, &he) || he.Limit != 8<<10 {
		t.Fatalf("got %v; want a HeadTooLargeError with Limit %d", err, 8<<10)
	}
}
