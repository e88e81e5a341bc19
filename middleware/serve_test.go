package middleware

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

func TestFramesPassesControlFramesAndEndsClean(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	s := run(t, Frames(rec.frames()))
	s.client.SendPing([]byte("p"))
	s.send(false, frame.OpText, "a")
	s.client.SendPong([]byte("q"))
	s.send(true, frame.OpContinuation, "b")
	s.send(true, frame.OpBinary, "c")
	s.closeClient()
	want := "ping:p text:a pong:q continuation:b binary:c close:\x03\xe8done"
	if got := rec.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestHandlerErrorCloses1011(t *testing.T) {
	wstest.CheckGoroutines(t)
	boom := errors.New("boom")
	s := run(t, Frames(HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error {
		return boom
	})))
	s.send(true, frame.OpText, "x")
	if code, reason := s.expectClose(); code != frame.CloseInternalError || reason != "internal error" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	if err := s.result(); err != boom {
		t.Fatalf("ServeConn: %v", err)
	}
}

// A handler that returns the error of its own bad send ends the connection with 1011: the
// peer, which sent only valid text, is not told that it sent invalid UTF-8 (1007) or broke
// the protocol (1002).
func TestHandlerSendMistakeCloses1011(t *testing.T) {
	for name, send := range map[string]func(c *transport.Conn) error{
		"invalid text": func(c *transport.Conn) error {
			_, err := c.WriteMessage(context.Background(), frame.OpText, []byte("caf\xc3"))
			return err
		},
		"fragmented ping": func(c *transport.Conn) error {
			_, err := c.SendFrame(false, frame.OpPing, nil)
			return err
		},
		"close 999": func(c *transport.Conn) error {
			_, err := c.SendClose(999, "")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			s := run(t, Messages(Text, HandlerFunc(func(_ context.Context, c *transport.Conn, _ string) error {
				return send(c)
			})))
			s.send(true, frame.OpText, "valid")
			if code, reason := s.expectClose(); code != frame.CloseInternalError || reason != "internal error" {
				t.Fatalf("client got close %d %q", code, reason)
			}
			var ue *transport.UsageError
			if err := s.result(); !errors.As(err, &ue) {
				t.Fatalf("ServeConn: %v, want the handler's *transport.UsageError", err)
			}
		})
	}
}

func TestHandlerCloseError(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Frames(HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error {
		return &transport.CloseError{Code: 4000, Reason: "bye"}
	})))
	s.send(true, frame.OpText, "x")
	if code, reason := s.expectClose(); code != 4000 || reason != "bye" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	if err := s.result(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestCancelSendsGoingAway(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Frames(echo))
	s.send(true, frame.OpText, "x")
	if got := s.recvText(); got != "x" {
		t.Fatalf("echo %q", got)
	}
	s.cancel()
	if code, _ := s.expectClose(); code != frame.CloseGoingAway {
		t.Fatalf("client got close %d", code)
	}
	if err := s.result(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

// A handler that gives up because ctx was cancelled ends the connection as the cancellation
// does, not as a failure.
func TestCancelDuringHandler(t *testing.T) {
	wstest.CheckGoroutines(t)
	entered := make(chan struct{})
	s := run(t, Frames(HandlerFunc(func(ctx context.Context, _ *transport.Conn, _ frame.Frame) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})))
	s.send(true, frame.OpText, "x")
	<-entered
	s.cancel()
	if code, _ := s.expectClose(); code != frame.CloseGoingAway {
		t.Fatalf("client got close %d", code)
	}
	if err := s.result(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

// A peer that does not answer the cancellation's close frame is cut off after CloseTimeout.
func TestCancelSilentPeer(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Frames(echo))
	start := time.Now()
	s.cancel()
	if err := s.result(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestAbnormalEnd(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Frames(echo))
	s.client.CloseNow()
	var ce *transport.CloseError
	if err := s.result(); !errors.As(err, &ce) || ce.Code != frame.CloseAbnormal {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestMessagesText(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Messages(Text, echoText))
	s.send(false, frame.OpText, "hel")
	s.client.SendPing([]byte("between fragments"))
	s.send(true, frame.OpContinuation, "lo")
	if got := s.recvText(); got != "hello" {
		t.Fatalf("echo %q", got)
	}
	s.send(true, frame.OpBinary, "\x00")
	if code, reason := s.expectClose(); code != frame.CloseUnsupportedData || reason != "unsupported message type" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	if err := s.result(); !errors.Is(err, ErrUnsupportedData) {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestMessagesBytes(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	s := run(t, Messages(Bytes, HandlerFunc(func(_ context.Context, c *transport.Conn, b []byte) error {
		rec.add(string(b))
		_, err := c.WriteMessage(context.Background(), frame.OpBinary, b)
		return err
	})))
	s.send(true, frame.OpBinary, "\x01\x02")
	s.send(true, frame.OpText, "text")
	for _, want := range []string{"\x01\x02", "text"} {
		if f := s.recv(); f.Opcode != frame.OpBinary || string(f.Payload) != want {
			t.Fatalf("got %v %q, want binary %q", f.Opcode, f.Payload, want)
		}
	}
	s.closeClient()
	if got := rec.String(); got != "\x01\x02 text" {
		t.Fatalf("handler saw %q", got)
	}
}

type point struct{ X, Y int }

func TestMessagesJSON(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Messages(JSON, HandlerFunc(func(_ context.Context, c *transport.Conn, p point) error {
		return transport.WriteJSON(context.Background(), c, point{p.Y, p.X})
	})))
	s.send(true, frame.OpText, `{"X":1,"Y":2}`)
	if got := s.recvText(); got != `{"X":2,"Y":1}` {
		t.Fatalf("got %s", got)
	}
	s.send(true, frame.OpText, `{"X":`)
	code, reason := s.expectClose()
	if code != frame.CloseInvalidPayload || !strings.Contains(reason, "decoding message") {
		t.Fatalf("client got close %d %q", code, reason)
	}
	var de *DecodeError
	if err := s.result(); !errors.As(err, &de) || de.Unwrap() == nil || !strings.Contains(err.Error(), "unexpected end of JSON") {
		t.Fatalf("ServeConn: %v", err)
	}
}

// longError is a decoder that fails with a message longer than a close reason may be.
func longError(frame.Opcode, []byte) (string, error) {
	return "", errors.New(strings.Repeat("é", 100))
}

func TestDecodeErrorReasonTruncated(t *testing.T) {
	s := run(t, Messages(longError, echoText))
	s.send(true, frame.OpText, "x")
	code, reason := s.expectClose()
	if code != frame.CloseInvalidPayload || len(reason) > frame.MaxCloseReason || !strings.HasSuffix(reason, "é") {
		t.Fatalf("client got close %d %q (%d bytes)", code, reason, len(reason))
	}
	s.result()
}

func TestTruncate(t *testing.T) {
	for _, s := range []string{"", "short", strings.Repeat("a", 200), strings.Repeat("€", 50)} {
		got := truncate(s)
		if len(got) > frame.MaxCloseReason || !strings.HasPrefix(s, got) || (len(s) <= frame.MaxCloseReason && got != s) {
			t.Errorf("truncate(%d bytes) = %d bytes", len(s), len(got))
		}
	}
}

// handled returns handlers that signal on the channel once they have handled a data message
// or its final frame, and keep nothing of it. The client does not read an answer: a Conn
// that has read keeps its reader state, which may hold a buffer from the pool.
func handled() (chan struct{}, Handler[frame.Frame], Handler[string], Handler[[]byte]) {
	done := make(chan struct{}, 1)
	return done,
		HandlerFunc(func(_ context.Context, _ *transport.Conn, f frame.Frame) error {
			if f.Opcode.IsData() && f.Fin {
				done <- struct{}{}
			}
			return nil
		}),
		HandlerFunc(func(context.Context, *transport.Conn, string) error {
			done <- struct{}{}
			return nil
		}),
		HandlerFunc(func(context.Context, *transport.Conn, []byte) error {
			done <- struct{}{}
			return nil
		})
}

// idleHeap serves conns connections with h, sends each one message (send), waits until h has
// handled it (done), and returns the live heap per idle connection.
func idleHeap(t *testing.T, h ConnHandler, done <-chan struct{}, opts *transport.Options, conns int, send func(c *transport.Conn) error) float64 {
	t.Helper()
	type end struct {
		s      *served
		client *transport.Conn
	}
	ends := make([]end, 0, conns)
	before := wstest.LiveHeap()
	for range conns {
		client, server := pairWith(t, transport.Setup{}, opts)
		s := runOn(t, context.Background(), h, client, server)
		if err := send(client); err != nil {
			t.Fatalf("send: %v", err)
		}
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatal("message not handled")
		}
		ends = append(ends, end{s, client})
	}
	held := wstest.LiveHeap()
	runtime.KeepAlive(send) // its message counts in before: it must in held too
	for _, e := range ends {
		e.client.Close(frame.CloseNormal, "")
		if err := e.s.result(); err != nil {
			t.Fatalf("ServeConn: %v", err)
		}
	}
	return (float64(held) - float64(before)) / float64(conns)
}

// An idle connection holds nothing of the largest message it was sent: after a 1,000,000-byte
// message it costs at most 16 KiB more than after a small one, at every kind of endpoint.
// Fifty connections of each kind make the figure exact to a few hundred bytes, and keep the
// test under half a minute with the race detector, which makes every megabyte slow.
func TestIdleAfterLargeMessage(t *testing.T) {
	wstest.CheckGoroutines(t)
	const conns, large, small = 50, 1_000_000, 100
	bigFrames := &transport.Options{CloseTimeout: time.Second, MaxPayloadLen: 2 << 20}
	textMsg := func(n int) func(*transport.Conn) error {
		msg := []byte(strings.Repeat("a", n))
		return func(c *transport.Conn) error {
			_, err := c.WriteMessage(context.Background(), frame.OpText, msg)
			return err
		}
	}
	jsonString := func(n int) func(*transport.Conn) error {
		msg := []byte(`"` + strings.Repeat("a", n-2) + `"`)
		return func(c *transport.Conn) error {
			_, err := c.WriteMessage(context.Background(), frame.OpText, msg)
			return err
		}
	}
	binaryMsg := func(n int) func(*transport.Conn) error {
		msg := make([]byte, n)
		return func(c *transport.Conn) error {
			_, err := c.WriteMessage(context.Background(), frame.OpBinary, msg)
			return err
		}
	}
	oneFrame := func(n int) func(*transport.Conn) error {
		msg := make([]byte, n)
		return func(c *transport.Conn) error { _, err := c.SendFrame(true, frame.OpBinary, msg); return err }
	}
	done, frames, text, bytes := handled()
	for _, tc := range []struct {
		name string
		h    ConnHandler
		opts *transport.Options
		send func(n int) func(*transport.Conn) error
	}{
		{"frames, fragments", Frames(frames), testOptions, binaryMsg},
		{"frames, one frame", Frames(frames), bigFrames, oneFrame},
		{"messages, Text", Messages(Text, text), testOptions, textMsg},
		{"messages, JSON", Messages(JSON, text), testOptions, jsonString},
		{"messages, Bytes", Messages(Bytes, bytes), testOptions, binaryMsg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each in a test of its own, whose cleanups free its connections before the next,
			// after a first round that leaves behind what the runtime keeps for reuse (it never
			// frees a goroutine's descriptor) and would otherwise count against the first.
			var base, after float64
			t.Run("warm-up", func(t *testing.T) { idleHeap(t, tc.h, done, tc.opts, conns, tc.send(small)) })
			t.Run("small", func(t *testing.T) { base = idleHeap(t, tc.h, done, tc.opts, conns, tc.send(small)) })
			t.Run("large", func(t *testing.T) { after = idleHeap(t, tc.h, done, tc.opts, conns, tc.send(large)) })
			t.Logf("idle connection: %.0f B of live heap after a %d-byte message, %.0f B after a %d-byte one (%d connections)",
				base, small, after, large, conns)
			if after > base+16<<10 {
				t.Errorf("after a %d-byte message an idle connection holds %.0f B more than after a %d-byte one", large, after-base, small)
			}
		})
	}
}
