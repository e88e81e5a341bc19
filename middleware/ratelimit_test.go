package middleware

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

func TestRateLimitWait(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Messages(Text, echoText, RateLimit(RateLimitOptions{Rate: 20, Burst: 2})))
	start := time.Now()
	for range 6 {
		s.send(true, frame.OpText, "m")
	}
	for range 6 {
		s.recvText()
	}
	// Two from the burst at once, then one every 50 ms: 200 ms for the last.
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("6 messages at 20/s with a burst of 2 took %v", d)
	}
	s.closeClient()
}

func TestRateLimitWaitCancelled(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	s := run(t, Frames(rec.frames(), RateLimit(RateLimitOptions{Rate: 0.001})))
	s.send(true, frame.OpText, "1")
	s.send(true, frame.OpText, "2")
	time.Sleep(50 * time.Millisecond) // "2" waits for a token
	s.cancel()
	if code, _ := s.expectClose(); code != frame.CloseGoingAway {
		t.Fatalf("client got close %d", code)
	}
	if err := s.result(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	if got := rec.String(); got != "text:1" {
		t.Fatalf("handler saw %q", got)
	}
}

func TestRateLimitWaitConnClosed(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Frames(echo, RateLimit(RateLimitOptions{Rate: 0.001})))
	s.send(true, frame.OpText, "1")
	s.send(true, frame.OpText, "2")
	time.Sleep(50 * time.Millisecond)
	s.server.CloseNow()
	if err := s.result(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestRateLimitDropMessages(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	var drops []int
	s := run(t, Messages(Text, HandlerFunc(func(_ context.Context, _ *transport.Conn, m string) error {
		rec.add(m)
		return nil
	}), RateLimit(RateLimitOptions{Rate: 0.001, Burst: 2, OnExceed: ExceedDrop, OnDrop: func(_ context.Context, c *transport.Conn, n int) {
		if c == nil {
			t.Error("OnDrop without the Conn")
		}
		drops = append(drops, n)
	}})))
	for _, m := range []string{"a", "b", "c", "d", "e"} {
		s.send(true, frame.OpText, m)
	}
	s.closeClient()
	if got := rec.String(); got != "a b" {
		t.Fatalf("handler saw %q", got)
	}
	if len(drops) != 3 || drops[2] != 3 {
		t.Fatalf("OnDrop calls %v", drops)
	}
}

// At the frame layer ExceedDrop discards whole messages and never control frames.
func TestRateLimitDropFrames(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	dropped := 0
	s := run(t, Frames(rec.frames(), RateLimit(RateLimitOptions{Rate: 0.001, OnExceed: ExceedDrop, OnDrop: func(_ context.Context, _ *transport.Conn, n int) {
		dropped = n
	}})))
	s.send(false, frame.OpText, "a1") // takes the only token
	s.send(false, frame.OpContinuation, "a2")
	s.client.SendPing([]byte("p"))
	s.send(true, frame.OpContinuation, "a3")
	s.send(false, frame.OpBinary, "b1") // no token: b is dropped whole
	s.client.SendPing([]byte("q"))
	s.send(false, frame.OpContinuation, "b2")
	s.send(true, frame.OpContinuation, "b3")
	s.send(true, frame.OpText, "c")
	s.closeClient()
	want := "text:a1 continuation:a2 ping:p continuation:a3 ping:q close:\x03\xe8done"
	if got := rec.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if dropped != 2 {
		t.Fatalf("dropped %d messages, want 2", dropped)
	}
}

func TestRateLimitClose(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Messages(Text, echoText, RateLimit(RateLimitOptions{Rate: 0.001, OnExceed: ExceedClose})))
	s.send(true, frame.OpText, "1")
	s.send(true, frame.OpText, "2")
	if got := s.recvText(); got != "1" {
		t.Fatalf("echo %q", got)
	}
	if code, reason := s.expectClose(); code != frame.ClosePolicyViolation || reason != "rate limit exceeded" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	if err := s.result(); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestRateLimitSparesControlFrames(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	s := run(t, Frames(rec.frames(), RateLimit(RateLimitOptions{Rate: 0.001, OnExceed: ExceedClose})))
	s.send(true, frame.OpText, "x")
	for range 5 {
		s.client.SendPing(nil)
		s.client.SendPong(nil)
	}
	s.closeClient()
	want := "text:x ping: pong: ping: pong: ping: pong: ping: pong: ping: pong: close:\x03\xe8done"
	if got := rec.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestRateLimitZeroValueLimitsNothing(t *testing.T) {
	h := wrap[string](RateLimit(RateLimitOptions{}), echoText)
	if _, ok := h.(handlerFunc[string]); !ok {
		t.Fatalf("the zero options wrapped the handler in %T", h)
	}
}

// A unit that finds a token costs no allocation, at either layer.
func TestRateLimitAllocs(t *testing.T) {
	nop := HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error { return nil })
	h := wrap[frame.Frame](RateLimit(RateLimitOptions{Rate: rate.Inf - 1, Burst: 1 << 30}), nop)
	f := frame.Frame{Header: frame.Header{Fin: true, Opcode: frame.OpText}, Payload: []byte("x")}
	if n := testing.AllocsPerRun(100, func() { h.Serve(context.Background(), nil, f) }); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
	nopText := HandlerFunc(func(context.Context, *transport.Conn, string) error { return nil })
	ht := wrap[string](RateLimit(RateLimitOptions{Rate: rate.Inf - 1, Burst: 1 << 30}), nopText)
	s := "x"
	if n := testing.AllocsPerRun(100, func() { ht.Serve(context.Background(), nil, s) }); n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}
