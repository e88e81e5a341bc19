package handshake

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// closeH2Transports calls CloseIdleConnections at the end of the test, so that goroutine
// counts come back and tests do not see each other's connections.
func closeH2Transports(t testing.TB) {
	t.Cleanup(CloseIdleConnections)
}

// trusting returns TLS settings that trust srv's certificate.
func trusting(srv *httptest.Server) *tls.Config {
	return srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}

// echoOnce sends a text and a 70,000-byte binary message on c and checks their echoes.
func echoOnce(t *testing.T, c *transport.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range []struct {
		op frame.Opcode
		p  []byte
	}{{frame.OpText, []byte("hello")}, {frame.OpBinary, bytes.Repeat([]byte("0123456789"), 7000)}} {
		if _, err := c.WriteMessage(context.Background(), m.op, m.p); err != nil {
			t.Fatal(err)
		}
		op, got, err := c.ReadMessage(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if op != m.op || !bytes.Equal(got, m.p) {
			t.Fatalf("echo: opcode %v, %d bytes; want %v, %d bytes", op, len(got), m.op, len(m.p))
		}
	}
}

func TestDialH2(t *testing.T) {
	tests := []struct {
		name    string
		mode    HTTP2Mode
		subs    []string
		compr   bool
		wantSub string
		wantExt string
	}{
		{name: "require", mode: HTTP2Require},
		{name: "auto", mode: HTTP2Auto},
		{name: "subprotocol", mode: HTTP2Require, subs: []string{"echo", "chat"}, wantSub: "chat"},
		{name: "permessage-deflate", mode: HTTP2Require, compr: true,
			wantExt: "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			closeH2Transports(t)
			sopts := &ServerOptions{Subprotocols: []string{"chat", "echo"}}
			opts := &DialOptions{HTTP2: tt.mode, Subprotocols: tt.subs}
			if tt.compr {
				sopts.Compression = &transport.CompressionOptions{}
				opts.Compression = &transport.CompressionOptions{}
			}
			srv := h2Server(t, h2Echo(t, sopts))
			opts.TLSConfig = trusting(srv)
			c, resp, err := Dial(context.Background(), wsURL(srv)+"/ws", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !c.HTTP2() {
				t.Errorf("answer %s %s, Conn.HTTP2 %v; want 200 over HTTP/2", resp.Proto, resp.Status, c.HTTP2())
			}
			if c.Subprotocol() != tt.wantSub || c.Extensions() != tt.wantExt {
				t.Errorf("subprotocol %q, extensions %q; want %q, %q", c.Subprotocol(), c.Extensions(), tt.wantSub, tt.wantExt)
			}
			echoOnce(t, c)
			if err := c.Close(frame.CloseNormal, ""); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
		})
	}
}

// TestDialH2SharesConnection dials three WebSockets to one server and checks that they came
// over one connection, and that closing them leaves it usable for the next.
func TestDialH2SharesConnection(t *testing.T) {
	wstest.CheckGoroutines(t)
	closeH2Transports(t)
	echo := h2Echo(t, nil)
	peers := make(chan string, 4)
	srv := h2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers <- r.RemoteAddr
		echo.ServeHTTP(w, r)
	}))
	opts := &DialOptions{HTTP2: HTTP2Require, TLSConfig: trusting(srv)}
	var conns []*transport.Conn
	for range 3 {
		c, _, err := Dial(context.Background(), wsURL(srv)+"/ws", opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns = append(conns, c)
	}
	for _, c := range conns {
		echoOnce(t, c)
		if err := c.Close(frame.CloseNormal, ""); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
	}
	c, _, err := Dial(context.Background(), wsURL(srv)+"/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	echoOnce(t, c)
	c.Close(frame.CloseNormal, "")
	first := <-peers
	for i := 1; i < 4; i++ {
		if p := <-peers; p != first {
			t.Errorf("WebSocket %d came from %s, the first from %s: want one connection", i, p, first)
		}
	}
}

// TestDialH2Fallback dials servers without WebSockets over HTTP/2: an HTTP/1.1-only server
// and an HTTP/2 server without extended CONNECT (a helper process without
// GODEBUG=http2xconnect=1). HTTP2Auto falls back to HTTP/1.1 and works; HTTP2Require fails
// with ErrNoHTTP2.
func TestDialH2Fallback(t *testing.T) {
	h1 := quietServer(t, echoHandler(nil), true)
	h1URL, h1TLS := wsURL(h1)+"/ws", trusting(h1)
	if p := h1.TLS.NextProtos; len(p) != 1 || p[0] != "http/1.1" {
		t.Fatalf("HTTP/1.1 server offers ALPN %q", p)
	}
	h2URL, cert := startHelperServer(t)
	parsed, err := x509.ParseCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	h2URL = "wss" + strings.TrimPrefix(h2URL, "https") + "/ws"
	h2TLS := &tls.Config{RootCAs: pool}

	tests := []struct {
		name  string
		url   string
		tls   *tls.Config
		modes []HTTP2Mode
	}{
		{"HTTP/1.1 server, auto", h1URL, h1TLS, []HTTP2Mode{HTTP2Auto, HTTP2Auto}},
		{"HTTP/1.1 server, require", h1URL, h1TLS, []HTTP2Mode{HTTP2Require}},
		{"HTTP/2 server without extended CONNECT, auto", h2URL, h2TLS, []HTTP2Mode{HTTP2Auto, HTTP2Auto}},
		{"HTTP/2 server without extended CONNECT, require", h2URL, h2TLS, []HTTP2Mode{HTTP2Require}},
		// What Auto learnt about the server does not make Require fall back.
		{"HTTP/2 server without extended CONNECT, auto then require", h2URL, h2TLS, []HTTP2Mode{HTTP2Auto, HTTP2Require}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			closeH2Transports(t)
			// The second Auto dial finds the server remembered and dials HTTP/1.1 at once.
			for i, mode := range tt.modes {
				opts := &DialOptions{HTTP2: mode, TLSConfig: tt.tls, Timeout: 20 * time.Second}
				c, _, err := Dial(context.Background(), tt.url, opts)
				if mode == HTTP2Require {
					if !errors.Is(err, ErrNoHTTP2) {
						t.Fatalf("dial %d: error %v, want ErrNoHTTP2", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				if c.HTTP2() {
					t.Errorf("dial %d: Conn over HTTP/2", i)
				}
				echoOnce(t, c)
				c.Close(frame.CloseNormal, "")
			}
		})
	}
}

// TestDialH2C dials ws:// with HTTP2Require, which speaks HTTP/2 without TLS (h2c, prior
// knowledge), to a server that accepts it.
func TestDialH2C(t *testing.T) {
	wstest.CheckGoroutines(t)
	closeH2Transports(t)
	srv := httptest.NewUnstartedServer(h2Echo(t, nil))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	c, _, err := Dial(context.Background(), wsURL(srv)+"/ws", &DialOptions{HTTP2: HTTP2Require})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if !c.HTTP2() {
		t.Error("Conn not over HTTP/2")
	}
	echoOnce(t, c)
	c.Close(frame.CloseNormal, "")
}
