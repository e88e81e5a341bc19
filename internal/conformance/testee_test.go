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
	"github.com/ecows/ecows/internal/wstest/echotest"
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
			err = echotest.Echo(context.Background(), c)
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
	key := newKey()
	conn, br, h, err := s.open(key, "", deadline)
	if err == nil {
		err = checkUpgradeHeaders(h, "Sec-Websocket-Accept", wstest.AcceptKey(key))
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("opening handshake with the server: %v", err)
	}
	return newPeer(server, conn, br), s.started(t, conn)
}

// open dials the server testee and sends it an opening handshake for key, with the header
// lines extra (each ending in CRLF), and reads its answer, which must be 101. It returns the
// connection, under deadline, with the reader its frames come through and the answer's
// header. The connection is nil when it could not be made.
func (s *echoServer) open(key, extra string, deadline time.Time) (*net.TCPConn, *bufio.Reader, textproto.MIMEHeader, error) {
	addr := s.srv.Listener.Addr().String()
	nc, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return nil, nil, nil, err
	}
	conn := nc.(*net.TCPConn)
	conn.SetDeadline(deadline)
	req := "GET /autobahn HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return conn, nil, nil, err
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
	return conn, br, h, err
}

// started lifts the deadline of conn, whose handshake is done, and returns the channel on
// which its handler reports its end, forgotten at the end of the test.
func (s *echoServer) started(t *testing.T, conn *net.TCPConn) <-chan error {
	conn.SetDeadline(time.Time{})
	local := conn.LocalAddr().String()
	t.Cleanup(func() {
		s.mu.Lock()
		delete(s.done, local)
		s.mu.Unlock()
	})
	return s.slot(local)
}

func connectClient(t *testing.T, deadline time.Time) (*peer, <-chan error) {
	ct := acceptClient(t, clientOpts, deadline)
	key := ct.h.Get("Sec-Websocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		ct.fail(fmt.Errorf("Sec-WebSocket-Key %q is not 16 bytes in base64", key))
	}
	if err := checkUpgradeHeaders(ct.h, "Sec-Websocket-Version", "13"); err != nil {
		ct.fail(err)
	}
	if ct.h.Get("Host") == "" {
		ct.fail(fmt.Errorf("no Host header"))
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wstest.AcceptKey(key) + "\r\n\r\n"
	if _, err := ct.conn.Write([]byte(resp)); err != nil {
		ct.fail(err)
	}
	ct.conn.SetDeadline(time.Time{})
	return newPeer(client, ct.conn, ct.br), ct.done
}

// clientTestee is the suite's end of a client testee's connection during its opening
// handshake.
type clientTestee struct {
	t      *testing.T
	conn   *net.TCPConn
	br     *bufio.Reader
	h      textproto.MIMEHeader // the request's header
	exts   <-chan string        // the Conn's Extensions(), once Dial has returned it
	done   <-chan error         // the testee's goroutine's end
	cancel context.CancelFunc   // ends the testee
}

// acceptClient has a client testee dial the suite with opts and echo, accepts its connection
// and reads its request, under deadline, up to the blank line.
func acceptClient(t *testing.T, opts *handshake.DialOptions, deadline time.Time) *clientTestee {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	exts := make(chan string, 1)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	go func() {
		defer cancel()
		c, _, err := handshake.Dial(ctx, "ws://"+ln.Addr().String()+"/autobahn", opts)
		if err == nil {
			exts <- c.Extensions()
			err = echotest.Echo(ctx, c)
		}
		done <- err
	}()
	ln.SetDeadline(deadline)
	conn, err := ln.AcceptTCP()
	if err != nil {
		cancel()
		t.Fatalf("accepting the client: %v", err)
	}
	ct := &clientTestee{t: t, conn: conn, exts: exts, done: done, cancel: cancel}
	conn.SetDeadline(deadline)
	ct.br = bufio.NewReaderSize(conn, 64<<10)
	tp := textproto.NewReader(ct.br)
	line, err := tp.ReadLine()
	if err != nil {
		ct.fail(err)
	}
	if line != "GET /autobahn HTTP/1.1" {
		ct.fail(fmt.Errorf("request line %q", line))
	}
	if ct.h, err = tp.ReadMIMEHeader(); err != nil {
		ct.fail(err)
	}
	return ct
}

// fail ends the testee and the test with err.
func (ct *clientTestee) fail(err error) {
	ct.t.Helper()
	ct.conn.Close()
	ct.cancel()
	<-ct.done
	ct.t.Fatalf("opening handshake with the client: %v", err)
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
