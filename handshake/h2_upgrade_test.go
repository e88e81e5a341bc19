package handshake

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/echotest"
	"github.com/ecows/ecows/transport"
)

// h2Server starts an httptest TLS server with HTTP/2 enabled.
func h2Server(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// h2Transport returns an x/net HTTP/2 client transport that trusts srv; the connections it
// opens are closed at the end of the test.
func h2Transport(t testing.TB, srv *httptest.Server) *http2.Transport {
	t.Helper()
	tr := &http2.Transport{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// clientStream is the client's side of an extended CONNECT stream: the response body for
// reads, the request body for writes, which this test client does not bound.
type clientStream struct {
	*h2Reader
	*io.PipeWriter
}

func (s clientStream) SetWriteDeadline(time.Time) error { return nil }

func (s clientStream) Close() error {
	s.PipeWriter.Close()
	return s.body.Close()
}

// h2Connect sends an RFC 8441 extended CONNECT to url through tr and returns the answer and,
// when it is 200, a client Conn over the stream.
func h2Connect(ctx context.Context, tr *http2.Transport, url string, h http.Header) (*http.Response, *transport.Conn, error) {
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, url, pr)
	if err != nil {
		return nil, nil, err
	}
	req.Header = h.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if _, ok := req.Header[":protocol"]; !ok {
		req.Header[":protocol"] = []string{"websocket"}
	}
	if req.Header.Get("Sec-WebSocket-Version") == "" {
		req.Header.Set("Sec-WebSocket-Version", "13")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		pw.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		pw.Close()
		return resp, nil, nil
	}
	setup := transport.Setup{Subprotocol: resp.Header.Get("Sec-WebSocket-Protocol"), HTTP2: true}
	return resp, transport.NewConn(clientStream{&h2Reader{body: resp.Body, res: make(chan h2Result, 1)}, pw}, transport.Client, setup, nil), nil
}

// mustH2Connect connects through tr to url and fails t unless the server upgrades; the Conn
// is closed at the end of the test.
func mustH2Connect(ctx context.Context, t testing.TB, tr *http2.Transport, url string) *transport.Conn {
	t.Helper()
	_, c, err := h2Connect(ctx, tr, url, nil)
	if err != nil || c == nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// h2Echo serves an echo WebSocket, failing t when the request or the Conn is not HTTP/2.
// The handler returns only once the Conn is done, as HTTP/2 requires.
func h2Echo(t testing.TB, opts *ServerOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, opts)
		if err != nil {
			return
		}
		if r.ProtoMajor != 2 || r.Method != http.MethodConnect || !c.HTTP2() {
			t.Errorf("request %s %s, Conn.HTTP2 %v: want an HTTP/2 CONNECT", r.Method, r.Proto, c.HTTP2())
		}
		echotest.Echo(context.Background(), c)
	})
}

// TestH2AdvertisesExtendedConnect proves that the test binary runs with http2xconnect=1:
// the server's first SETTINGS frame carries SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.
func TestH2AdvertisesExtendedConnect(t *testing.T) {
	srv := h2Server(t, http.NotFoundHandler())
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	nc, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if p := nc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nc, nc)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingEnableConnectProtocol); !ok || v != 1 {
		t.Fatalf("SETTINGS_ENABLE_CONNECT_PROTOCOL = %d (sent %v), want 1", v, ok)
	}
}

func TestUpgradeH2Echo(t *testing.T) {
	tests := []struct {
		name    string
		opts    *ServerOptions
		header  http.Header
		wantSub string
		wantExt string
	}{
		{name: "plain"},
		{name: "subprotocol", opts: &ServerOptions{Subprotocols: []string{"chat", "echo"}},
			header: http.Header{"Sec-Websocket-Protocol": {"echo, chat"}}, wantSub: "chat"},
		{name: "same origin", header: http.Header{"Origin": {"https://example.com"}},
			opts: &ServerOptions{OriginPatterns: []string{"example.com"}}},
		{name: "permessage-deflate offered, not enabled",
			header: http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}}},
		{name: "permessage-deflate", opts: &ServerOptions{Options: transport.Options{Compression: &transport.CompressionOptions{}}},
			header:  http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_no_context_takeover"}},
			wantExt: "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			srv := h2Server(t, h2Echo(t, tt.opts))
			tr := h2Transport(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, c, err := h2Connect(ctx, tr, srv.URL+"/ws", tt.header)
			if err != nil {
				t.Fatal(err)
			}
			if c == nil {
				t.Fatalf("answer %s, want 200", resp.Status)
			}
			defer c.CloseNow()
			if resp.ProtoMajor != 2 {
				t.Errorf("answer over %s, want HTTP/2", resp.Proto)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tt.wantSub {
				t.Errorf("subprotocol %q, want %q", got, tt.wantSub)
			}
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tt.wantExt {
				t.Errorf("extensions %q, want %q", got, tt.wantExt)
			}
			if resp.Header.Get("Sec-WebSocket-Accept") != "" {
				t.Error("answer carries Sec-WebSocket-Accept, which RFC 8441 leaves out")
			}
			if tt.wantExt != "" {
				// The client Conn here speaks no compression; it sends plain frames, which a
				// compressing server accepts, and the server compresses only what is long.
				return
			}
			echoOnce(t, c)
			if err := c.Close(frame.CloseNormal, "bye"); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
		})
	}
}

func TestUpgradeH2Refusals(t *testing.T) {
	tests := []struct {
		name   string
		opts   *ServerOptions
		header http.Header
		want   *HandshakeError
	}{
		{name: "protocol", header: http.Header{":protocol": {"not-websocket"}}, want: ErrH2Protocol},
		{name: "version", header: http.Header{"Sec-Websocket-Version": {"8"}}, want: ErrVersion},
		{name: "origin", header: http.Header{"Origin": {"https://evil.example"}}, want: ErrOrigin},
		{name: "origin pattern", opts: &ServerOptions{OriginPatterns: []string{"[a"}},
			header: http.Header{"Origin": {"https://evil.example"}}, want: ErrOriginPattern},
		{name: "extensions", header: http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; ="}}, want: ErrBadExtensions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan error, 1)
			srv := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Upgrade(w, r, tt.opts)
				if c != nil {
					c.CloseNow()
				}
				got <- err
			}))
			tr := h2Transport(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, c, err := h2Connect(ctx, tr, srv.URL+"/ws", tt.header)
			if err != nil {
				t.Fatal(err)
			}
			if c != nil {
				c.CloseNow()
				t.Fatal("upgraded; want a refusal")
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want.Status || strings.TrimSpace(string(body)) != tt.want.Reason {
				t.Errorf("answer %d %q, want %d %q", resp.StatusCode, body, tt.want.Status, tt.want.Reason)
			}
			if err := <-got; !errors.Is(err, tt.want) {
				t.Errorf("Upgrade error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestUpgradeH2ReadTimeoutResumes checks the transport contract over HTTP/2: a read timeout
// leaves the Conn usable, and the next read returns the frame that arrives after it.
func TestUpgradeH2ReadTimeoutResumes(t *testing.T) {
	wstest.CheckGoroutines(t)
	result := make(chan error, 1)
	srv := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, nil)
		if err != nil {
			result <- err
			return
		}
		defer c.CloseNow()
		if _, err := c.RecvFrame(20 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			result <- errors.New("first read: " + errString(err) + ", want a timeout")
			return
		}
		c.SendText([]byte("timed out")) // tells the client to send
		f, err := c.RecvFrame(20 * time.Second)
		if err == nil && string(f.Payload) != "after" {
			err = errors.New("read " + string(f.Payload) + ", want after")
		}
		result <- err
	}))
	tr := h2Transport(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := mustH2Connect(ctx, t, tr, srv.URL+"/ws")
	if _, _, err := c.ReadMessage(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendText([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestUpgradeH2CloseEndsStreamOnly opens two WebSockets on one HTTP/2 connection, closes one
// and checks that the other goes on over the same connection.
func TestUpgradeH2CloseEndsStreamOnly(t *testing.T) {
	wstest.CheckGoroutines(t)
	echo := h2Echo(t, nil)
	peers := make(chan string, 2)
	srv := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers <- r.RemoteAddr
		echo.ServeHTTP(w, r)
	}))
	tr := h2Transport(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns [2]*transport.Conn
	for i := range conns {
		conns[i] = mustH2Connect(ctx, t, tr, srv.URL+"/ws")
	}
	if err := conns[0].Close(frame.CloseNormal, ""); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	for i := range 3 {
		if _, err := conns[1].SendText([]byte("still here")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if _, m, err := conns[1].ReadMessage(ctx, nil); err != nil || string(m) != "still here" {
			t.Fatalf("echo %d: %q, %v", i, m, err)
		}
	}
	if err := conns[1].Close(frame.CloseNormal, ""); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	if a, b := <-peers, <-peers; a != b {
		t.Errorf("the WebSockets came from %s and %s, want one connection", a, b)
	}
}

// TestKeepHTTP2Streams serves a handler that returns as soon as it has upgraded, leaving the
// Conn to a goroutine: wrapped, its WebSocket over HTTP/2 goes on after the return.
func TestKeepHTTP2Streams(t *testing.T) {
	wstest.CheckGoroutines(t)
	done := make(chan struct{})
	srv := h2Server(t, KeepHTTP2Streams(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, nil)
		if err != nil {
			return
		}
		go func() {
			defer close(done)
			echotest.Echo(context.Background(), c)
		}()
	})))
	tr := h2Transport(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := mustH2Connect(ctx, t, tr, srv.URL+"/ws")
	time.Sleep(50 * time.Millisecond) // the handler has long returned; the stream must not have ended
	for i := range 3 {
		if _, err := c.SendText([]byte("after the return")); err != nil {
			t.Fatal(err)
		}
		if _, m, err := c.ReadMessage(ctx, nil); err != nil || string(m) != "after the return" {
			t.Fatalf("echo %d: %q, %v", i, m, err)
		}
	}
	if err := c.Close(frame.CloseNormal, ""); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	<-done
}
