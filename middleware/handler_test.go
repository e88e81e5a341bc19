package middleware

import (
	"context"
	"errors"
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// hooked is a layer that records its hooks and the units it serves under its name, and can
// refuse the connection in Open.
type hooked struct {
	name    string
	rec     *recorder
	next    Handler[frame.Frame]
	openErr error
}

func (h *hooked) Open(context.Context, *transport.Conn) error {
	h.rec.add("open:" + h.name)
	return h.openErr
}

func (h *hooked) Serve(ctx context.Context, c *transport.Conn, f frame.Frame) error {
	h.rec.add("serve:" + h.name)
	if h.next == nil {
		return nil
	}
	return h.next.Serve(ctx, c, f)
}

func (h *hooked) Closed(context.Context, *transport.Conn, error) { h.rec.add("closed:" + h.name) }

func hook(name string, rec *recorder, openErr error) Middleware[frame.Frame] {
	return func(next Handler[frame.Frame]) Handler[frame.Frame] {
		return &hooked{name: name, rec: rec, next: next, openErr: openErr}
	}
}

func TestChainOrder(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	s := run(t, Frames(&hooked{name: "h", rec: rec}, hook("a", rec, nil), hook("b", rec, nil)))
	s.send(true, frame.OpText, "x")
	s.closeClient()
	want := "open:a open:b open:h serve:a serve:b serve:h serve:a serve:b serve:h closed:h closed:b closed:a"
	if got := rec.String(); got != want { // the second serve is the close frame
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestChainBuiltPerConnection(t *testing.T) {
	calls := 0
	mw := Middleware[frame.Frame](func(next Handler[frame.Frame]) Handler[frame.Frame] { calls++; return next })
	h := Frames(echo, mw)
	for range 2 {
		s := run(t, h)
		s.closeClient()
	}
	if calls != 2 {
		t.Fatalf("middleware called %d times for 2 connections", calls)
	}
}

func TestOpenErrorRefuses(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	refuse := &frame.ProtocolError{Code: frame.ClosePolicyViolation, Reason: "no entry"}
	s := run(t, Frames(&hooked{name: "h", rec: rec}, hook("a", rec, nil), hook("b", rec, refuse)))
	if code, reason := s.expectClose(); code != frame.ClosePolicyViolation || reason != "no entry" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	if err := s.result(); !errors.Is(err, refuse) {
		t.Fatalf("ServeConn: %v", err)
	}
	if got, want := rec.String(), "open:a open:b closed:h closed:b closed:a"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestChainHooksCalledDirectly(t *testing.T) {
	rec := &recorder{}
	h := Chain[frame.Frame](&hooked{name: "h", rec: rec}, hook("a", rec, nil))
	if err := h.(Opener).Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Serve(context.Background(), nil, frame.Frame{}); err != nil {
		t.Fatal(err)
	}
	h.(Closer).Closed(context.Background(), nil, nil)
	if got, want := rec.String(), "open:a open:h serve:a serve:h closed:h closed:a"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// A middleware that is off hands back the handler it got, whose hooks still run once.
func TestChainHooksOnceThroughLayersThatAreOff(t *testing.T) {
	rec := &recorder{}
	h := Chain[frame.Frame](&hooked{name: "h", rec: rec}, Keepalive(0, 0), MaxPayload(0, 0), RateLimit(RateLimitOptions{}), hook("a", rec, nil))
	if err := h.(Opener).Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	h.(Closer).Closed(context.Background(), nil, nil)
	if got, want := rec.String(), "open:a open:h closed:h closed:a"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// Intercept's function sees each unit before the handler: it may pass on another unit, keep
// the unit from the handler, or end the connection with an error (1011).
func TestIntercept(t *testing.T) {
	boom := errors.New("boom")
	mw := Intercept(func(ctx context.Context, c *transport.Conn, s string, next func(context.Context, *transport.Conn, string) error) error {
		switch s {
		case "drop":
			return nil
		case "fail":
			return boom
		}
		return next(ctx, c, s+"!")
	})
	for _, tc := range []struct {
		name string
		send []string
		want string // the first answer; "" for a close with 1011
	}{
		{"changed", []string{"hi"}, "hi!"},
		{"dropped", []string{"drop", "hi"}, "hi!"}, // no answer to "drop" comes first
		{"failed", []string{"fail"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			s := run(t, Messages(Text, echoText, mw))
			for _, m := range tc.send {
				s.send(true, frame.OpText, m)
			}
			if tc.want == "" {
				if code, _ := s.expectClose(); code != frame.CloseInternalError {
					t.Fatalf("client got close %d, want 1011", code)
				}
				if err := s.result(); err != boom {
					t.Fatalf("ServeConn: %v", err)
				}
				return
			}
			if got := s.recvText(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			s.closeClient()
		})
	}
}
