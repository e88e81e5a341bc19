package conformance

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// The testees use the limits of examples/autobahn: raised to 16 MiB, the rest defaults.
var (
	serverOpts = &handshake.ServerOptions{
		Options: transport.Options{MaxPayloadLen: maxLen, MaxMessageLen: maxLen},
	}
	clientOpts = &handshake.DialOptions{
		Options: transport.Options{MaxPayloadLen: maxLen, MaxMessageLen: maxLen},
		Proxy:   func(*http.Request) (*url.URL, error) { return nil, nil },
	}
)

// echo is the testee's loop, as in examples/autobahn: every message goes back with its
// opcode; the Conn's own checks decide every protocol case, and the loop ends with the error
// that ended the connection.
func echo(ctx context.Context, c *transport.Conn) error {
	defer c.CloseNow()
	var buf []byte
	for {
		op, msg, err := c.ReadMessage(ctx, buf[:0])
		if err != nil {
			return err
		}
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			return err
		}
		buf = msg
	}
}

// echoServer is the server testee: an httptest server whose handler upgrades and echoes.
// Each connection's handler reports its end under the client's address.
type echoServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	done map[string]chan error
}

func newEchoServer(t *testing.T, opts *handshake.ServerOptions) *echoServer {
	s := &echoServer{done: make(map[string]chan error)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err == nil {
			err = echo(context.Background(), c)
		}
		s.slot(r.RemoteAddr) <- err
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// slot returns the channel on which the handler for addr reports its end.
func (s *echoServer) slot(addr string) chan error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.done[addr]
	if !ok {
		ch = make(chan error, 1)
		s.done[addr] = ch
	}
	return ch
}

var (
	echoSrvMu sync.Mutex
	echoSrv   *echoServer
)

// connect opens one connection to a fresh testee of role r, doing the suite's side of the
// opening handshake by hand, and returns the suite's peer and a channel that receives the error
// that ended the testee's goroutine.
func connect(t *testing.T, r role, deadline time.Time) (*peer, <-chan error) {
	t.Helper()
	if overH2 {
		if r == server {
			return connectServerH2(t, deadline)
		}
		return connectClientH2(t, deadline)
	}
	if r == server {
		return connectServer(t, deadline)
	}
	return connectClient(t, deadline)
}

func connectServer(t *testing.T, deadline time.Time) (*peer, <-chan error) {
	echoSrvMu.Lock()
	s := echoSrv
	echoSrvMu.Unlock()
	addr := s.srv.Listener.Addr().String()
	nc, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		t.Fatal(err)
	}
	conn := nc.(*net.TCPConn)
	key := newKey()
	conn.SetDeadline(deadline)
	req := "GET /autobahn HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err == nil && !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		err = fmt.Errorf("status line %q, want 101", status)
	}
	var h textproto.MIMEHeader
	if err == nil {
		h, err = tp.ReadMIMEHeader()
	}
	if err == nil {
		err = checkUpgradeHeaders(h, "Sec-Websocket-Accept", wstest.AcceptKey(key))
	}
	if err != nil {
		conn.Close()
		t.Fatalf("opening handshake with the server: %v", err)
	}
	conn.SetDeadline(time.Time{})
	local := conn.LocalAddr().String()
	t.Cleanup(func() {
		s.mu.Lock()
		delete(s.done, local)
		s.mu.Unlock()
	})
	return newPeer(server, conn, br), s.slot(local)
}

func connectClient(t *testing.T, deadline time.Time) (*peer, <-chan error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	go func() {
		defer cancel()
		c, _, err := handshake.Dial(ctx, "ws://"+ln.Addr().String()+"/autobahn", clientOpts)
		if err == nil {
			err = echo(ctx, c)
		}
		done <- err
	}()
	ln.SetDeadline(deadline)
	conn, err := ln.AcceptTCP()
	if err != nil {
		cancel()
		t.Fatalf("accepting the client: %v", err)
	}
	fail := func(err error) {
		conn.Close()
		cancel()
		<-done
		t.Fatalf("opening handshake with the client: %v", err)
	}
	conn.SetDeadline(deadline)
	br := bufio.NewReaderSize(conn, 64<<10)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		fail(err)
	}
	if line != "GET /autobahn HTTP/1.1" {
		fail(fmt.Errorf("request line %q", line))
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		fail(err)
	}
	key := h.Get("Sec-Websocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		fail(fmt.Errorf("Sec-WebSocket-Key %q is not 16 bytes in base64", key))
	}
	if err := checkUpgradeHeaders(h, "Sec-Websocket-Version", "13"); err != nil {
		fail(err)
	}
	if h.Get("Host") == "" {
		fail(fmt.Errorf("no Host header"))
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wstest.AcceptKey(key) + "\r\n\r\n"
	if _, err := conn.Write([]byte(resp)); err != nil {
		fail(err)
	}
	conn.SetDeadline(time.Time{})
	return newPeer(client, conn, br), done
}

// checkUpgradeHeaders checks the headers both sides of the handshake send, and one more.
func checkUpgradeHeaders(h textproto.MIMEHeader, name, want string) error {
	switch {
	case !hasToken(h.Get("Upgrade"), "websocket"):
		return fmt.Errorf("Upgrade: %q", h.Get("Upgrade"))
	case !hasToken(h.Get("Connection"), "upgrade"):
		return fmt.Errorf("Connection: %q", h.Get("Connection"))
	case h.Get(name) != want:
		return fmt.Errorf("%s: %q, want %q", name, h.Get(name), want)
	case len(h["Sec-Websocket-Extensions"]) > 0:
		return fmt.Errorf("unexpected extensions %q", h["Sec-Websocket-Extensions"])
	}
	return nil
}

func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}
