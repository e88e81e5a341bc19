package middleware

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// wait bounds every blocking step of a test.
const wait = 5 * time.Second

// testOptions keep close handshakes with a silent peer short.
var testOptions = &transport.Options{CloseTimeout: time.Second}

// pair returns a client and a server Conn joined over TCP on 127.0.0.1; setup is the server's.
func pair(t testing.TB, setup transport.Setup) (client, server *transport.Conn) {
	t.Helper()
	return pairWith(t, setup, testOptions)
}

// pairWith is pair with opts on both ends.
func pairWith(t testing.TB, setup transport.Setup, opts *transport.Options) (client, server *transport.Conn) {
	t.Helper()
	a, b := wstest.TCPPair(t)
	return transport.NewConn(a, transport.Client, transport.Setup{}, opts),
		transport.NewConn(b, transport.Server, setup, opts)
}

// served is a ConnHandler running on the server end of a pair.
type served struct {
	t      testing.TB
	client *transport.Conn
	server *transport.Conn
	cancel context.CancelFunc
	done   chan error
}

// run serves h on a new pair, in a goroutine; runCtx with a context of the test's.
func run(t testing.TB, h ConnHandler) *served {
	return runCtx(t, context.Background(), h)
}

func runCtx(t testing.TB, ctx context.Context, h ConnHandler) *served {
	t.Helper()
	client, server := pair(t, transport.Setup{Subprotocol: "chat"})
	return runOn(t, ctx, h, client, server)
}

func runOn(t testing.TB, ctx context.Context, h ConnHandler, client, server *transport.Conn) *served {
	ctx, cancel := context.WithCancel(ctx)
	s := &served{t: t, client: client, server: server, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- h.ServeConn(ctx, server) }()
	t.Cleanup(func() {
		cancel()
		server.CloseNow()
		select {
		case <-s.done:
		case <-time.After(wait):
		}
	})
	return s
}

// result waits for ServeConn to return.
func (s *served) result() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup and later calls
		return err
	case <-time.After(wait):
		s.t.Fatal("ServeConn still running")
		return nil
	}
}

// running reports whether ServeConn has not returned yet.
func (s *served) running() bool {
	select {
	case err := <-s.done:
		s.done <- err
		return false
	default:
		return true
	}
}

// send sends a text or binary frame from the client.
func (s *served) send(fin bool, op frame.Opcode, payload string) {
	s.t.Helper()
	if _, err := s.client.SendFrame(fin, op, []byte(payload)); err != nil {
		s.t.Fatalf("client send: %v", err)
	}
}

// recv returns the next frame the client receives.
func (s *served) recv() frame.Frame {
	s.t.Helper()
	f, err := s.client.RecvFrame(wait)
	if err != nil {
		s.t.Fatalf("client recv: %v", err)
	}
	return f
}

// recvText returns the next data frame's payload, skipping control frames other than close.
func (s *served) recvText() string {
	s.t.Helper()
	for {
		f := s.recv()
		switch f.Opcode {
		case frame.OpPing, frame.OpPong:
			continue
		case frame.OpClose:
			s.t.Fatalf("client got close %d %q, want data", f.CloseCode(), f.CloseReason())
		}
		return string(f.Payload)
	}
}

// expectClose reads until the server's close frame and returns its code and reason.
func (s *served) expectClose() (frame.CloseCode, string) {
	s.t.Helper()
	for {
		f := s.recv()
		if f.Opcode == frame.OpClose {
			return f.CloseCode(), f.CloseReason()
		}
	}
}

// closeClient runs the close handshake from the client and checks that ServeConn returns nil.
func (s *served) closeClient() {
	s.t.Helper()
	if err := s.client.Close(frame.CloseNormal, "done"); err != nil {
		s.t.Fatalf("client close: %v", err)
	}
	if err := s.result(); err != nil {
		s.t.Fatalf("ServeConn after a clean close: %v", err)
	}
}

// echo is a frame handler that sends data frames back as they came.
var echo = HandlerFunc(func(_ context.Context, c *transport.Conn, f frame.Frame) error {
	if !f.Opcode.IsData() {
		return nil
	}
	_, err := c.SendFrame(f.Fin, f.Opcode, f.Payload)
	return err
})

// echoText is a message handler that sends each message back.
var echoText = HandlerFunc(func(_ context.Context, c *transport.Conn, s string) error {
	_, err := c.WriteMessage(context.Background(), frame.OpText, []byte(s))
	return err
})

// recorder collects what handlers saw, from any goroutine.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *recorder) String() string { return strings.Join(r.list(), " ") }

// frames returns a handler that records each frame as "opcode:payload".
func (r *recorder) frames() Handler[frame.Frame] {
	return HandlerFunc(func(_ context.Context, _ *transport.Conn, f frame.Frame) error {
		r.add(f.Opcode.String() + ":" + string(f.Payload))
		return nil
	})
}

// logBuffer is a zerolog destination whose lines the test reads as JSON.
type logBuffer struct {
	wstest.Buffer
}

// events returns the logged events with message msg.
func (l *logBuffer) events(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if ev["message"] == msg {
			out = append(out, ev)
		}
	}
	return out
}
