package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// ecowsServer is an ecows-backed server on 127.0.0.1, over ws:// and wss://, whose request
// paths are the peer-client scenarios (see serve). Each connection's handler reports a
// serverResult when it ends.
type ecowsServer struct {
	url, tlsURL string
	results     chan serverResult

	mu      sync.Mutex
	conns   map[*transport.Conn]bool
	pending []serverResult // results not awaited yet
	wg      sync.WaitGroup
}

// serverResult is what the ecows side of one connection saw.
type serverResult struct {
	path     string
	proto    string        // the subprotocol agreed on
	offer    string        // the client's Sec-WebSocket-Extensions, which ecows ignores
	err      error         // what the last read returned: how the connection ended
	closeErr error         // close-by-ecows: what Close returned
	closeDur time.Duration // close-by-ecows: how long Close took
	echo     *frame.Frame  // close-by-ecows-frames: the peer's answer to ecows' close frame
	messages []recvMsg     // fragments: the messages the peer sent, as they came
	pongs    []string      // pong payloads received
	problems []string      // what the handler itself found wrong
}

type recvMsg struct {
	op     frame.Opcode
	frames int
	data   []byte
}

func (r *serverResult) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// startEcowsServer starts the server; extra adds plain HTTP handlers (the browser's page).
func startEcowsServer(t *testing.T, extra map[string]http.Handler) *ecowsServer {
	t.Helper()
	s := &ecowsServer{results: make(chan serverResult, 256), conns: map[*transport.Conn]bool{}}
	mux := http.NewServeMux()
	for path, h := range extra {
		mux.Handle(path, h)
	}
	mux.HandleFunc("/", s.serve)
	ln, tln := listen(t), listen(t)
	quiet := log.New(io.Discard, "", 0) // TLS handshake errors are expected from wss-untrusted
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: quiet}
	tsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: serverTLS(t), ErrorLog: quiet}
	go srv.Serve(ln)
	go tsrv.ServeTLS(tln, "", "")
	s.url = "ws://" + ln.Addr().String()
	s.tlsURL = "wss://" + tln.Addr().String()
	t.Cleanup(func() {
		srv.Close()
		tsrv.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.CloseNow()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// httpURL returns the server's base http:// URL.
func (s *ecowsServer) httpURL() string { return "http" + strings.TrimPrefix(s.url, "ws") }

// await returns the result of the connection to path, waiting up to scenarioTimeout. Results
// for other paths are kept for their own await.
func (s *ecowsServer) await(t *testing.T, path string) serverResult {
	t.Helper()
	timeout := time.After(scenarioTimeout)
	for {
		s.mu.Lock()
		for i, r := range s.pending {
			if r.path == path {
				s.pending = append(s.pending[:i], s.pending[i+1:]...)
				s.mu.Unlock()
				for _, p := range r.problems {
					t.Errorf("ecows server: %s", p)
				}
				return r
			}
		}
		s.mu.Unlock()
		select {
		case r := <-s.results:
			s.mu.Lock()
			s.pending = append(s.pending, r)
			s.mu.Unlock()
		case <-timeout:
			t.Fatalf("ecows server: no connection to %s ended within %v", path, scenarioTimeout)
		}
	}
}

// serverOptions are the options for path: limits raised for the 1 MiB messages, or lowered
// for too-big-for-ecows; subprotocols in the server's order of preference.
func serverOptions(path string) handshake.ServerOptions {
	opts := handshake.ServerOptions{
		Options: transport.Options{
			MaxPayloadLen: largeLimit,
			MaxMessageLen: largeLimit,
			CloseTimeout:  closeTimeout,
		},
		Subprotocols: []string{proto2, proto1},
		// The browser's page comes from the ws:// server and also opens wss:// on another port.
		OriginPatterns: []string{"127.0.0.1:*"},
	}
	if path == "/too-big-for-ecows" {
		opts.MaxPayloadLen, opts.MaxMessageLen = smallLimit, 2*smallLimit
	}
	return opts
}

func (s *ecowsServer) serve(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	res := serverResult{path: r.URL.Path, offer: strings.Join(r.Header.Values("Sec-WebSocket-Extensions"), ", ")}
	opts := serverOptions(r.URL.Path)
	opts.PongHandler = func(c *transport.Conn, p []byte) error {
		res.pongs = append(res.pongs, string(p))
		if r.URL.Path == "/ping" {
			verdict := "pong-bad "
			if string(p) == pingFromEcows {
				verdict = "pong-ok "
			}
			_, err := c.WriteMessage(context.Background(), frame.OpText, []byte(verdict+string(p)))
			return err
		}
		return nil
	}
	c, err := handshake.Upgrade(w, r, &opts)
	if err != nil {
		res.problem("upgrade: %v", err)
		s.results <- res
		return
	}
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
	defer func() {
		c.CloseNow()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.results <- res
	}()
	res.proto = c.Subprotocol()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()

	switch r.URL.Path {
	case "/echo", "/wss":
		res.err = echoMessages(ctx, c)
	case "/fragments":
		if err := sendFragments(c); err != nil {
			res.problem("sending fragments: %v", err)
			return
		}
		res.messages, res.err = echoFrames(ctx, c, &res.pongs)
	case "/ping":
		// The default ping handler answers the peer's ping; then "go" asks for ours.
		op, msg, err := c.ReadMessage(ctx, nil)
		if err != nil {
			res.err = err
			return
		}
		if op != frame.OpText || string(msg) != "go" {
			res.problem("wanted text \"go\", got %v %q", op, msg)
		}
		if _, err := c.SendPing([]byte(pingFromEcows)); err != nil {
			res.problem("SendPing: %v", err)
		}
		res.err = readToEnd(ctx, c) // the pong handler answers pong-ok
	case "/close-by-ecows":
		start := time.Now()
		res.closeErr = c.Close(codeFromEcows, reasonFromEcows)
		res.closeDur = time.Since(start)
	case "/close-by-ecows-frames":
		// The same with SendClose and RecvFrame, which show the peer's answer.
		if _, err := c.SendClose(codeFromEcows, reasonFromEcows); err != nil {
			res.problem("SendClose: %v", err)
			return
		}
		for {
			f, err := c.RecvFrame(time.Until(deadlineOf(ctx)))
			if err != nil {
				res.err = err
				return
			}
			if f.Opcode == frame.OpClose {
				f.Payload = append([]byte(nil), f.Payload...)
				res.echo = &f
				return
			}
		}
	case "/subprotocol":
		if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("proto:"+c.Subprotocol())); err != nil {
			res.problem("WriteMessage: %v", err)
		}
		res.err = readToEnd(ctx, c)
	case "/invalid-utf8-from-ecows":
		// SendFrame does not check UTF-8 (SendText and WriteMessage do): a raw frame.
		if _, err := c.SendFrame(true, frame.OpText, invalidUTF8); err != nil {
			res.problem("SendFrame: %v", err)
		}
		res.err = readToEnd(ctx, c)
	case "/too-big-for-peer":
		if _, err := c.WriteMessage(context.Background(), frame.OpBinary, pattern(oversize)); err != nil {
			res.problem("WriteMessage: %v", err)
		}
		res.err = readToEnd(ctx, c)
	default: // close-by-peer, invalid-utf8-from-peer, too-big-for-ecows: see how it ends
		res.err = readToEnd(ctx, c)
	}
}

// readToEnd reads and drops messages until the connection ends, and returns why it ended.
func readToEnd(ctx context.Context, c *transport.Conn) error {
	buf := make([]byte, 0, 4096)
	for {
		if _, _, err := c.ReadMessage(ctx, buf[:0]); err != nil {
			return err
		}
	}
}

// echoMessages echoes every message until the connection ends.
func echoMessages(ctx context.Context, c *transport.Conn) error {
	var buf []byte
	for {
		op, msg, err := c.ReadMessage(ctx, buf[:0])
		if err != nil {
			return err
		}
		buf = msg
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			return err
		}
	}
}

// sendFragments sends fragText in three fragments split inside characters, with a ping
// between the first two, then a binary message in three fragments.
func sendFragments(c *transport.Conn) error {
	parts := thirds([]byte(fragText))
	steps := []func() error{
		func() error { _, err := c.SendFrame(false, frame.OpText, parts[0]); return err },
		func() error { _, err := c.SendPing([]byte(pingFromEcows)); return err },
		func() error { _, err := c.SendFrame(false, frame.OpContinuation, parts[1]); return err },
		func() error { _, err := c.SendFrame(true, frame.OpContinuation, parts[2]); return err },
	}
	bin := thirds(pattern(fragBinaryLen))
	steps = append(steps,
		func() error { _, err := c.SendFrame(false, frame.OpBinary, bin[0]); return err },
		func() error { _, err := c.SendFrame(false, frame.OpContinuation, bin[1]); return err },
		func() error { _, err := c.SendFrame(true, frame.OpContinuation, bin[2]); return err },
	)
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// echoFrames reads frame by frame with RecvFrame, so that it sees how messages were
// fragmented, answers pings itself (RecvFrame leaves them to its caller), records pongs, and
// echoes each whole message. It returns the messages and why the connection ended.
func echoFrames(ctx context.Context, c *transport.Conn, pongs *[]string) ([]recvMsg, error) {
	var msgs []recvMsg
	var cur *recvMsg
	for {
		timeout := time.Until(deadlineOf(ctx))
		if timeout <= 0 {
			return msgs, context.DeadlineExceeded
		}
		f, err := c.RecvFrame(timeout)
		if err != nil {
			return msgs, err
		}
		switch f.Opcode {
		case frame.OpPing:
			if _, err := c.SendPong(f.Payload); err != nil {
				return msgs, err
			}
			continue
		case frame.OpPong:
			*pongs = append(*pongs, string(f.Payload))
			continue
		case frame.OpClose:
			// RecvFrame has answered it; the next call reports the CloseError.
			continue
		case frame.OpText, frame.OpBinary:
			msgs = append(msgs, recvMsg{op: f.Opcode})
			cur = &msgs[len(msgs)-1]
		}
		if cur == nil {
			return msgs, errors.New("continuation without a message")
		}
		cur.frames++
		cur.data = append(cur.data, f.Payload...)
		if f.Fin {
			if _, err := c.WriteMessage(context.Background(), cur.op, cur.data); err != nil {
				return msgs, err
			}
			cur = nil
		}
	}
}

func deadlineOf(ctx context.Context) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(scenarioTimeout)
	}
	return dl
}

// checkFragmentsReceived checks the two fragmented messages a peer sent in the fragments
// scenario: fragText and the binary pattern, each in more than one frame.
func checkFragmentsReceived(t *testing.T, msgs []recvMsg) {
	t.Helper()
	if len(msgs) != 2 {
		t.Errorf("ecows got %d messages in the fragments scenario, want 2", len(msgs))
		return
	}
	if m := msgs[0]; m.op != frame.OpText || string(m.data) != fragText || m.frames < 2 {
		t.Errorf("first message: %v in %d frames %q, want text in 2 or more frames %q", m.op, m.frames, m.data, fragText)
	}
	if m := msgs[1]; m.op != frame.OpBinary || !bytes.Equal(m.data, pattern(fragBinaryLen)) || m.frames < 2 {
		t.Errorf("second message: %v in %d frames of %d bytes, want binary in 2 or more frames of %d bytes", m.op, m.frames, len(m.data), fragBinaryLen)
	}
	t.Logf("peer's fragmented messages reached ecows in %d and %d frames", msgs[0].frames, msgs[1].frames)
}

// closeCode returns the code and reason of a *transport.CloseError, or fails t.
func closeCode(t *testing.T, err error) (frame.CloseCode, string) {
	t.Helper()
	var ce *transport.CloseError
	if !errors.As(err, &ce) {
		t.Errorf("got %v (%T), want a *transport.CloseError", err, err)
		return 0, ""
	}
	return ce.Code, ce.Reason
}

// protocolCode returns the code of a *frame.ProtocolError, or fails t.
func protocolCode(t *testing.T, err error) frame.CloseCode {
	t.Helper()
	var pe *frame.ProtocolError
	if !errors.As(err, &pe) {
		t.Errorf("got %v (%T), want a *frame.ProtocolError", err, err)
		return 0
	}
	return pe.Code
}
