package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
)

func TestServeTLSUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-tls-self-signed", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, "-tls-self-signed excludes"},
		{[]string{"serve", "-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"serve", "-tls-key", "k.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"serve", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"}, "-tls-cert and -tls-key: open"},
		{[]string{"dial", "-http2", "sometimes", "wss://a"}, "-http2 must be auto, require or off"},
	} {
		var stdout, stderr wstest.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("ecows %s: exit %d, stderr:\n%s\nwant a failure and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
		}
	}
}

// TestServeTLS serves HTTPS with a self-signed certificate and checks that the page and the
// WebSocket are served over HTTP/2 and HTTP/1.1 on the one port, for each -http2 mode.
func TestServeTLS(t *testing.T) {
	wstest.CheckGoroutines(t)
	t.Cleanup(handshake.CloseIdleConnections)
	cfg, fingerprint, err := selfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	if len(fingerprint) != 32*3-1 {
		t.Errorf("fingerprint %q, want 32 bytes in colon-separated hex", fingerprint)
	}
	s := startServe(t, serveConfig{tls: cfg})
	if !strings.HasPrefix(s.pageURL(), "https://") || !strings.HasPrefix(s.wsURL(), "wss://") {
		t.Errorf("URLs %s and %s, want https:// and wss://", s.pageURL(), s.wsURL())
	}
	roots := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(leaf)

	for _, proto := range []struct {
		h2   bool
		want int
	}{{true, 2}, {false, 1}} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: proto.h2}
		if !proto.h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(s.pageURL())
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != proto.want {
			t.Errorf("page: %s over %s, want 200 over HTTP/%d", resp.Status, resp.Proto, proto.want)
		}
	}

	for _, mode := range []struct {
		name  string
		mode  handshake.HTTP2Mode
		want2 bool
	}{{"off", handshake.HTTP2Off, false}, {"auto", handshake.HTTP2Auto, true}, {"require", handshake.HTTP2Require, true}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, err := handshake.Dial(ctx, s.wsURL(), &handshake.DialOptions{HTTP2: mode.mode, TLSConfig: &tls.Config{RootCAs: roots}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if c.HTTP2() != mode.want2 {
				t.Errorf("Conn.HTTP2 %v, want %v", c.HTTP2(), mode.want2)
			}
			if _, err := c.SendText([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			if _, m, err := c.ReadMessage(ctx, nil); err != nil || string(m) != "hi" {
				t.Fatalf("echo: %q, %v", m, err)
			}
			if err := c.Close(frame.CloseNormal, ""); err != nil {
				t.Errorf("close handshake: %v", err)
			}
		})
	}

	var stdout, stderr wstest.Buffer
	code := run(context.Background(), []string{"dial", "-http2", "require", "-insecure", s.wsURL()}, strings.NewReader("hello\n"), &stdout, &stderr)
	want := "* connected to " + s.wsURL() + " (over HTTP/2)\n< text: hello\n"
	if code != 0 || !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("dial -http2 require: exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout to start with\n%s", code, stdout.String(), stderr.String(), want)
	}
}

// TestLoadTLS reads a certificate and key from PEM files, as -tls-cert and -tls-key give them.
func TestLoadTLS(t *testing.T) {
	cfg, _, err := selfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cfg.Certificates[0].PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	got, err := loadTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Certificates) != 1 || strings.Join(got.NextProtos, ",") != "h2,http/1.1" {
		t.Errorf("config: %d certificates, ALPN %q", len(got.Certificates), got.NextProtos)
	}
	if _, err := loadTLS(keyFile, certFile); err == nil {
		t.Error("swapped files loaded")
	}
}
