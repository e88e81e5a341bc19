package middleware

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

func TestFramesPassesControlFramesAndEndsClean(t *testing.T) {
	checkGoroutines(t)
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
	checkGoroutines(t)
	boom := errors.New("boom")
	s := run(t, Frames(HandlerFunc[frame.Frame](func(context.Context, *transport.Conn, frame.Frame) error {
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
		"invalid text": func(c *transport.Conn) error { return Send(c, Text{}, "caf\xc3") },
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
			checkGoroutines(t)
			s := run(t, Messages[string](Text{}, HandlerFunc[string](func(_ context.Context, c *transport.Conn, _ string) error {
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
	checkGoroutines(t)
	s := run(t, Frames(HandlerFunc[frame.Frame](func(context.Context, *transport.Conn, frame.Frame) error {
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
	checkGoroutines(t)
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
	checkGoroutines(t)
	entered := make(chan struct{})
	s := run(t, Frames(HandlerFunc[frame.Frame](func(ctx context.Context, _ *transport.Conn, _ frame.Frame) error {
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
	checkGoroutines(t)
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
	checkGoroutines(t)
	s := run(t, Frames(echo))
	s.client.CloseNow()
	var ce *transport.CloseError
	if err := s.result(); !errors.As(err, &ce) || ce.Code != frame.CloseAbnormal {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestMessagesText(t *testing.T) {
	checkGoroutines(t)
	s := run(t, Messages[string](Text{}, echoText))
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
	checkGoroutines(t)
	rec := &recorder{}
	s := run(t, Messages[[]byte](Bytes{}, HandlerFunc[[]byte](func(_ context.Context, c *transport.Conn, b []byte) error {
		rec.add(string(b))
		return Send(c, Bytes{}, b)
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
	checkGoroutines(t)
	s := run(t, Messages[point](JSON[point]{}, HandlerFunc[point](func(_ context.Context, c *transport.Conn, p point) error {
		return Send(c, JSON[point]{}, point{p.Y, p.X})
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

// longError is a codec failure with a message longer than a close reason may be.
type longError struct{}

func (longError) Decode(frame.Opcode, []byte) (string, error) {
	return "", errors.New(strings.Repeat("é", 100))
}

func (longError) Encode(string) (frame.Opcode, []byte, error) { return frame.OpText, nil, nil }

func TestDecodeErrorReasonTruncated(t *testing.T) {
	s := run(t, Messages[string](longError{}, echoText))
	s.send(true, frame.OpText, "x")
	code, reason := s.expectClose()
	if code != frame.CloseInvalidPayload || len(reason) > frame.MaxCloseReason || !strings.HasSuffix(reason, "é") {
		t.Fatalf("client got close %d %q (%d bytes)", code, reason, len(reason))
	}
	s.result()
}

func TestSend(t *testing.T) {
	client, server := pair(t, transport.Setup{})
	if err := Send(server, Text{}, "hi"); err != nil {
		t.Fatal(err)
	}
	op, msg, err := client.ReadMessage(context.Background(), nil)
	if err != nil || op != frame.OpText || string(msg) != "hi" {
		t.Fatalf("got %v %q %v", op, msg, err)
	}
	if err := Send(server, JSON[chan int]{}, make(chan int)); err == nil {
		t.Fatal("sent a value JSON cannot encode")
	}
}

func TestTruncate(t *testing.T) {
	for _, s := range []string{"", "short", strings.Repeat("a", 200), strings.Repeat("€", 50)} {
		got := truncate(s)
		if len(got) > frame.MaxCloseReason || !strings.HasPrefix(s, got) || (len(s) <= frame.MaxCloseReason && got != s) {
			t.Errorf("truncate(%d bytes) = %d bytes", len(s), len(got))
		}
	}
}
