package middleware

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// A client that never reads never answers a ping: the server must give up on it in bounded
// time, telling it why in a close frame it may still read.
func TestKeepaliveClosesSilentPeer(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    ConnHandler
	}{
		{"frames", Frames(echo, AutoPong(&AutoPongOptions{Interval: 50 * time.Millisecond, Timeout: 150 * time.Millisecond}))},
		{"messages", Messages[string](Text{}, echoText, Keepalive[string](50*time.Millisecond, 150*time.Millisecond))},
		{"default timeout", Frames(echo, Keepalive[frame.Frame](50*time.Millisecond, 0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			start := time.Now()
			s := run(t, tc.h)
			if err := s.result(); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("ServeConn: %v", err)
			}
			if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
				t.Fatalf("silent peer closed after %v", d)
			}
			pings := 0
			for {
				f := s.recv()
				if f.Opcode == frame.OpPing {
					pings++
					continue
				}
				if f.CloseCode() != frame.CloseInternalError || f.CloseReason() != "keepalive timeout" || pings < 1 {
					t.Fatalf("after %d pings, got %v %d %q", pings, f.Opcode, f.CloseCode(), f.CloseReason())
				}
				break
			}
		})
	}
}

// A client that answers pings (ReadMessage does) keeps the connection up however quiet its
// application is. The timeout leaves a loaded machine time to answer, and the test outlasts it.
func TestKeepaliveSparesLivePeer(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    ConnHandler
	}{
		{"frames", Frames(echo, AutoPong(&AutoPongOptions{Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond}))},
		{"messages", Messages[string](Text{}, echoText, Keepalive[string](50*time.Millisecond, 300*time.Millisecond))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			s := run(t, tc.h)
			read := make(chan error, 1)
			go func() {
				_, _, err := s.client.ReadMessage(context.Background(), nil)
				read <- err
			}()
			time.Sleep(800 * time.Millisecond)
			if !s.running() {
				t.Fatalf("live peer closed: %v", s.result())
			}
			if n := s.server.Stats().FramesOut; n < 5 {
				t.Fatalf("%d pings in 800 ms at 50 ms", n)
			}
			s.client.Close(frame.CloseNormal, "")
			if err := s.result(); err != nil {
				t.Fatalf("ServeConn: %v", err)
			}
			<-read
		})
	}
}

func TestKeepaliveOff(t *testing.T) {
	if h := Keepalive[string](0, time.Second)(echoText); !isHandlerFunc(h) {
		t.Fatalf("interval 0 wrapped the handler in %T", h)
	}
}

func isHandlerFunc(h Handler[string]) bool {
	_, ok := h.(HandlerFunc[string])
	return ok
}

// Closed before Open (a connection refused by an outer layer) has no goroutine to stop.
func TestKeepaliveClosedWithoutOpen(t *testing.T) {
	h := Keepalive[string](time.Second, 0)(echoText)
	h.(Closer).Closed(context.Background(), nil, nil)
}

// A handler that holds the read loop longer than the timeout keeps the connection alive: the
// peer's pongs wait unread meanwhile.
func TestKeepaliveSlowHandler(t *testing.T) {
	checkGoroutines(t)
	slow := HandlerFunc[string](func(ctx context.Context, c *transport.Conn, s string) error {
		time.Sleep(500 * time.Millisecond)
		return echoText(ctx, c, s)
	})
	s := run(t, Messages[string](Text{}, slow, Keepalive[string](50*time.Millisecond, 200*time.Millisecond)))
	s.send(true, frame.OpText, "x")
	// ReadMessage answers the pings queued before the echo.
	if _, msg, err := s.client.ReadMessage(context.Background(), nil); err != nil || string(msg) != "x" {
		t.Fatalf("echo %q, %v", msg, err)
	}
	if !s.running() {
		t.Fatalf("closed while the handler was busy: %v", s.result())
	}
	s.client.Close(frame.CloseNormal, "")
	if err := s.result(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}
