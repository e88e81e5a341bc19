package reliability

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// fuzzHandshakeServer is an http.Server configured as "ecows serve" configures its own, whose
// handler upgrades every request with handshake.Upgrade and reads messages until the
// connection ends. It records panics and the errors reading ended with.
type fuzzHandshakeServer struct {
	addr    string
	running atomic.Int64 // handlers running
	mu      sync.Mutex
	panics  []string
	badEnds []error
}

// readToEnd reads c's messages for at most within, until an error ends the reading. It
// returns nil if that error is one a peer may cause (a protocol error, a close, a closed
// Conn), and the error otherwise.
func readToEnd(c *transport.Conn, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, _, err := c.ReadMessage(ctx, nil)
		if err == nil {
			continue
		}
		var pe *frame.ProtocolError
		var ce *transport.CloseError
		if errors.As(err, &pe) || errors.As(err, &ce) || errors.Is(err, transport.ErrClosed) {
			return nil
		}
		return err
	}
}

func startFuzzHandshakeServer(f *testing.F) *fuzzHandshakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s := &fuzzHandshakeServer{addr: ln.Addr().String()}
	opts := &handshake.ServerOptions{
		Subprotocols:   []string{"chat", "superchat"},
		OriginPatterns: []string{"*.example.com"},
		Options:        transport.Options{CloseTimeout: time.Second},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.running.Add(1)
			defer s.running.Add(-1)
			defer func() {
				if p := recover(); p != nil {
					s.mu.Lock()
					s.panics = append(s.panics, fmt.Sprint(p))
					s.mu.Unlock()
					panic(p)
				}
			}()
			c, err := handshake.Upgrade(w, r, opts)
			if err != nil {
				return
			}
			defer c.CloseNow()
			if err := readToEnd(c, 3*time.Second); err != nil {
				s.mu.Lock()
				s.badEnds = append(s.badEnds, err)
				s.mu.Unlock()
			}
		}),
		ReadHeaderTimeout: 2 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	f.Cleanup(func() { srv.Close() })
	return s
}

// FuzzServerHandshake sends arbitrary bytes to an http.Server whose handler upgrades with
// handshake.Upgrade, over a real TCP connection, then half-closes it. The server must answer
// with a well-formed HTTP response (a 101 only with the right Sec-WebSocket-Accept) or close
// without one, within bounded time, and the handler must neither panic nor end reading the
// bytes after the request with an error other than a close or protocol error.
func FuzzServerHandshake(f *testing.F) {
	host := "Host: 127.0.0.1\r\n"
	valid := "GET /ws HTTP/1.1\r\n" + host + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	f.Add(valid + "\r\n")
	f.Add(valid + "Sec-WebSocket-Protocol: superchat, chat\r\nOrigin: https://app.example.com\r\n\r\n" +
		string(clientFrame(clientFrame(nil, false, frame.OpText, []byte("Hel")), true, frame.OpContinuation, []byte("lo"))))
	f.Add(valid + "\r\n" + string(clientFrame(nil, true, frame.OpClose, []byte{0x03, 0xe8})))
	f.Add(valid + "\r\n" + string(hugeHeader(true)))
	f.Add(valid + "\r\n\x81\x05Hello") // unmasked
	f.Add(valid + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x; y=\"1\"\r\n\r\n")
	f.Add(valid + "Origin: https://evil.example\r\n\r\n")
	f.Add(strings.Replace(valid, "13", "8", 1) + "\r\n")
	f.Add("POST /ws HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n" + host + "\r\n")
	f.Add("GET / HTTP/1.0\r\n\r\n")
	f.Add("GET / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	f.Add("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03") // a TLS client hello
	f.Add("")
	s := startFuzzHandshakeServer(f)
	f.Fuzz(func(t *testing.T, in string) {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		tc := nc.(*net.TCPConn)
		defer func() {
			tc.SetLinger(0) // no TIME_WAIT: the fuzzer opens thousands of connections
			tc.Close()
		}()
		deadline := time.Now().Add(10 * time.Second)
		tc.SetDeadline(deadline)
		go func() {
			tc.Write([]byte(in))
			tc.CloseWrite()
		}()
		out, err := io.ReadAll(tc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server neither answered nor closed within 10 s; it sent %q", out)
		}
		if len(out) > 0 {
			checkServerAnswer(t, in, out)
		}
		// The handler, if one ran, must have ended too.
		for wait := time.Now().Add(10 * time.Second); s.running.Load() > 0; time.Sleep(time.Millisecond) {
			if time.Now().After(wait) {
				t.Fatal("a handler still runs 10 s after its client closed")
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.panics) > 0 || len(s.badEnds) > 0 {
			t.Fatalf("panics %q, untyped read errors %v", s.panics, s.badEnds)
		}
	})
}

// checkServerAnswer checks the first response the server wrote to the request in in.
func checkServerAnswer(t *testing.T, in string, out []byte) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("the server wrote %q, not an HTTP response: %v", out, err)
	}
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			t.Fatalf("101 to a request that does not parse (%v)", err)
		}
		if got, want := resp.Header.Get("Sec-WebSocket-Accept"), wstest.AcceptKey(req.Header.Get("Sec-WebSocket-Key")); got != want {
			t.Fatalf("101 with Sec-WebSocket-Accept %q, want %q", got, want)
		}
	case resp.StatusCode >= 400 && resp.StatusCode <= 505:
	default:
		t.Fatalf("the server answered %s", resp.Status)
	}
}

// FuzzClientHandshake has handshake.Dial read arbitrary bytes as the server's answer, from a
// raw TCP server; "{ACCEPT}" in the input becomes the Sec-WebSocket-Accept value for the
// client's key, so that the fuzzer can reach past the key check. Dial must not panic, must
// return within its timeout, and must succeed or fail with one of its documented errors. After
// a success, the Conn reads the rest of the bytes as frames and must end with a close or
// protocol error.
func FuzzClientHandshake(f *testing.F) {
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"
	server := func(b []byte, fin bool, op frame.Opcode, p string) []byte {
		return frame.AppendFrame(b, frame.Header{Fin: fin, Opcode: op}, []byte(p))
	}
	f.Add(ok + "\r\n")
	f.Add(ok + "Sec-WebSocket-Protocol: chat\r\n\r\n" + string(server(server(nil, true, frame.OpText, "hi"), true, frame.OpClose, "\x03\xe8")))
	f.Add(ok + "Sec-WebSocket-Protocol: other\r\n\r\n")
	f.Add(ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
	f.Add(ok + "\r\n" + string(hugeHeader(false)))
	f.Add(ok + "\r\n" + string(clientFrame(nil, true, frame.OpText, []byte("masked"))))
	f.Add(strings.Replace(ok, "{ACCEPT}", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 1) + "\r\n")
	f.Add("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden")
	f.Add("HTTP/1.1 101 Switching Protocols\r\n\r\n")
	f.Add("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
	f.Add("SSH-2.0-OpenSSH_9.6\r\n")
	f.Add("")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	url := "ws://" + ln.Addr().String() + "/"
	var answers atomic.Pointer[string]
	served := make(chan error, 1)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			served <- serveRaw(nc.(*net.TCPConn), *answers.Load())
		}
	}()

	f.Fuzz(func(t *testing.T, in string) {
		answers.Store(&in)
		const timeout = 2 * time.Second
		opts := &handshake.DialOptions{
			Subprotocols: []string{"chat", "superchat"},
			Timeout:      timeout,
			Proxy:        noProxy,
			Options:      transport.Options{CloseTimeout: 100 * time.Millisecond},
		}
		start := time.Now()
		c, resp, err := handshake.Dial(context.Background(), url, opts)
		if d := time.Since(start); d > timeout+time.Second {
			t.Fatalf("Dial returned after %v with a timeout of %v", d, timeout)
		}
		if err != nil {
			if !documentedDialError(err, resp) {
				t.Fatalf("undocumented Dial error %T: %v", err, err)
			}
		} else {
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("Dial succeeded with %s", resp.Status)
			}
			if p := c.Subprotocol(); p != "" && p != "chat" && p != "superchat" {
				t.Fatalf("Dial succeeded with subprotocol %q, not offered", p)
			}
			if err := readToEnd(c, 3*time.Second); err != nil {
				t.Fatalf("reading after the handshake ended with %T: %v", err, err)
			}
			c.CloseNow()
		}
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("raw server: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the raw server still runs 10 s after Dial returned")
		}
	})
}

// serveRaw reads a handshake request from nc, answers with answer ({ACCEPT} replaced), then
// half-closes and reads until the client closes.
func serveRaw(nc *net.TCPConn, answer string) error {
	defer func() {
		nc.SetLinger(0) // no TIME_WAIT: the fuzzer opens thousands of connections
		nc.Close()
	}()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		return fmt.Errorf("reading Dial's request: %w", err)
	}
	answer = strings.ReplaceAll(answer, "{ACCEPT}", wstest.AcceptKey(req.Header.Get("Sec-WebSocket-Key")))
	nc.Write([]byte(answer)) // Dial may have given up already
	nc.CloseWrite()
	_, err = io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("the client kept the connection open 10 s after the answer")
	}
	return nil
}

// documentedDialError reports whether err is one of the errors Dial documents: a StatusError
// with the response, one of the Err variables, or a network error (the server closed early,
// or the timeout expired).
func documentedDialError(err error, resp *http.Response) bool {
	var se *handshake.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return resp != nil && se.Response == resp && resp.StatusCode != http.StatusSwitchingProtocols
	case errors.Is(err, handshake.ErrBadResponse), errors.Is(err, handshake.ErrResponseUpgrade),
		errors.Is(err, handshake.ErrResponseConnection), errors.Is(err, handshake.ErrAccept),
		errors.Is(err, handshake.ErrSubprotocol), errors.Is(err, handshake.ErrExtension):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return true
	}
	return false
}
