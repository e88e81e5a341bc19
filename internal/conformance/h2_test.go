package conformance

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest/echotest"
	_ "github.com/ecows/ecows/internal/xconnect" // extended CONNECT in net/http's HTTP/2 server
)

// overH2 makes connect reach the testee over HTTP/2 (RFC 8441) instead of TCP; it is set
// while TestServerH2 or TestClientH2 runs (the tests of this package run one at a time).
var overH2 bool

// clientOptsH2 are the client testee's options over HTTP/2: h2c with prior knowledge.
var clientOptsH2 = func() *handshake.DialOptions {
	o := *clientOpts
	o.HTTP2 = handshake.HTTP2Require
	return &o
}()

// TestServerH2 runs every group against the ecows echo server over HTTP/2: each case opens an
// HTTP/2 connection without TLS (h2c), sends an extended CONNECT and speaks WebSocket frames
// on the stream. The stream ends as the TCP connection does over HTTP/1.1: the server ends
// its side (END_STREAM) after the close handshake and the suite reads a clean EOF.
func TestServerH2(t *testing.T) {
	s := &echoServer{done: make(map[string]chan error)}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, serverOpts)
		if err == nil {
			if !c.HTTP2() {
				t.Errorf("request over %s, want HTTP/2", r.Proto)
			}
			err = echotest.Echo(context.Background(), c) // the stream lives as long as the handler
		}
		s.slot(r.RemoteAddr) <- err
	}))
	s.srv.Config.Protocols = new(http.Protocols)
	s.srv.Config.Protocols.SetHTTP1(true)
	s.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	echoSrvMu.Lock()
	echoSrv = s
	echoSrvMu.Unlock()
	runGroupsH2(t, server)
}

// runGroupsH2 runs every group against the testee of role r with connect going over HTTP/2.
func runGroupsH2(t *testing.T, r role) {
	echoSrvMu.Lock()
	overH2 = true
	echoSrvMu.Unlock()
	t.Cleanup(func() {
		echoSrvMu.Lock()
		overH2 = false
		echoSrvMu.Unlock()
	})
	runGroups(t, r)
}

// connectServerH2 opens an HTTP/2 connection of its own to the server testee and a
// WebSocket stream on it.
func connectServerH2(t *testing.T, deadline time.Time) (*peer, <-chan error) {
	echoSrvMu.Lock()
	s := echoSrv
	echoSrvMu.Unlock()
	addr := s.srv.Listener.Addr().String()
	var local string
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				local = c.LocalAddr().String()
			}
			return c, err
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	bound := time.AfterFunc(time.Until(deadline), cancel)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, "http://"+addr+"/autobahn", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header[":protocol"] = []string{"websocket"}
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := tr.RoundTrip(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err = &handshake.StatusError{Response: resp}
	}
	if !bound.Stop() && err == nil {
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		pw.Close()
		tr.CloseIdleConnections()
		t.Fatalf("opening handshake with the server over HTTP/2: %v", err)
	}
	st := &h2Stream{body: resp.Body, pw: pw, cancel: cancel, tr: tr}
	t.Cleanup(func() {
		st.Close()
		s.mu.Lock()
		delete(s.done, local)
		s.mu.Unlock()
	})
	return newPeer(server, st, bufio.NewReaderSize(resp.Body, 64<<10)), s.slot(local)
}

// h2Stream is the suite's end of a WebSocket over HTTP/2: it writes the request body, and
// the peer reads the response body.
type h2Stream struct {
	body   io.ReadCloser
	pw     *io.PipeWriter
	cancel context.CancelFunc
	tr     *http2.Transport

	mu sync.Mutex
	dl time.Time
}

func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.dl = t
	s.mu.Unlock()
	return nil
}

// Write writes to the request body; a write that the server's flow control holds up past
// the deadline ends the body, as a timed-out socket write would fail. Once the server has
// ended the stream, the transport stops reading the body and what is written is dropped, as
// bytes written to a TCP peer that has closed are: a server that gives up on an out-of-step
// client ends the whole stream, since HTTP/2 handlers cannot half-close.
func (s *h2Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	dl := s.dl
	s.mu.Unlock()
	if !dl.IsZero() {
		t := time.AfterFunc(time.Until(dl), func() { s.pw.CloseWithError(os.ErrDeadlineExceeded) })
		defer t.Stop()
	}
	n, err := s.pw.Write(p)
	if errors.Is(err, io.ErrClosedPipe) {
		return len(p), nil
	}
	return n, err
}

// CloseWrite ends the request body (END_STREAM), the HTTP/2 form of a TCP FIN.
func (s *h2Stream) CloseWrite() error { return s.pw.Close() }

// Close ends the stream and closes the connection.
func (s *h2Stream) Close() error {
	s.pw.Close()
	s.body.Close()
	s.cancel()
	s.tr.CloseIdleConnections()
	return nil
}

// TestClientH2 runs every group against the ecows echo client over HTTP/2: handshake.Dial
// with HTTP2Require to a ws:// URL (h2c), the suite being a net/http HTTP/2 server that
// answers the extended CONNECT. net/http's handlers cannot half-close a stream, so where
// the suite over TCP sends its FIN and then checks that the client closes on it, here it ends
// the stream (the handler returns, and net/http resets the request side) and checks that
// the client testee returns.
func TestClientH2(t *testing.T) {
	runGroupsH2(t, client)
}

// connectClientH2 starts an HTTP/2 server (h2c) for one case, has the client testee dial it,
// and returns the suite's end of the WebSocket stream.
func connectClientH2(t *testing.T, deadline time.Time) (*peer, <-chan error) {
	streams := make(chan *h2ServerStream, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Header.Get(":protocol") != "websocket" || r.Header.Get("Sec-Websocket-Version") != "13" {
			t.Errorf("client's request: %s %s, :protocol %q, version %q", r.Method, r.Proto, r.Header.Get(":protocol"), r.Header.Get("Sec-Websocket-Version"))
			http.Error(w, "not an RFC 8441 WebSocket request", http.StatusBadRequest)
			return
		}
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			return
		}
		st := &h2ServerStream{w: w, rc: rc, done: make(chan struct{})}
		st.body = &endReader{r: r.Body, st: st}
		streams <- st
		select { // the stream lives as long as this handler
		case <-st.done:
		case <-r.Context().Done():
		}
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(handshake.CloseIdleConnections)

	done := make(chan error, 1)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	go func() {
		defer cancel()
		c, _, err := handshake.Dial(ctx, "ws://"+srv.Listener.Addr().String()+"/autobahn", clientOptsH2)
		if err == nil {
			if !c.HTTP2() {
				t.Error("client Conn not over HTTP/2")
			}
			err = echotest.Echo(ctx, c)
		}
		done <- err
	}()
	var st *h2ServerStream
	select {
	case st = <-streams:
	case err := <-done:
		t.Fatalf("opening handshake with the client over HTTP/2: %v", err)
	case <-time.After(time.Until(deadline)):
		cancel()
		<-done
		t.Fatal("the client did not open its stream in time")
	}
	t.Cleanup(func() { st.Close() })
	return newPeer(client, st, bufio.NewReaderSize(st.body, 64<<10)), done
}

// h2ServerStream is the suite's end of a WebSocket over HTTP/2 as the server: it writes the
// response and reads the request body until it ends the stream.
type h2ServerStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	body io.Reader

	mu    sync.Mutex // held by writes, so that none comes after the handler returned
	ended bool
	done  chan struct{} // closed to make the handler return
}

func (s *h2ServerStream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	return s.rc.SetWriteDeadline(t)
}

// Write writes to the response and flushes. After the suite has ended the stream, what it
// writes is dropped, as bytes written after a FIN would be refused.
func (s *h2ServerStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return 0, net.ErrClosed
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

// CloseWrite ends the stream: the handler returns, which ends the response (END_STREAM)
// and, the request side being still open, makes net/http reset it.
func (s *h2ServerStream) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.ended = true
		close(s.done)
	}
	return nil
}

func (s *h2ServerStream) Close() error { return s.CloseWrite() }

// endReader reads the request body; once the suite has ended the stream, net/http's reset of
// the request side reads as the end of the stream.
type endReader struct {
	r  io.Reader
	st *h2ServerStream
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.st.mu.Lock()
		ended := e.st.ended
		e.st.mu.Unlock()
		if ended {
			err = io.EOF
		}
	}
	return n, err
}
