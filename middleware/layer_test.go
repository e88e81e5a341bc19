package middleware

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// unitSpy is an AnyMiddleware's handler that records what it learns of each unit, and its
// hooks.
type unitSpy struct {
	next Handler[Unit]
	rec  *recorder
}

func (s *unitSpy) Serve(ctx context.Context, c *transport.Conn, u Unit) error {
	if f, ok := u.Frame(); ok {
		s.rec.add("frame:" + f.Opcode.String())
	} else {
		s.rec.add(fmt.Sprintf("value:%T", u.Value()))
	}
	return s.next.Serve(ctx, c, u)
}

func (s *unitSpy) Open(context.Context, *transport.Conn) error { s.rec.add("open:spy"); return nil }

func (s *unitSpy) Closed(context.Context, *transport.Conn, error) { s.rec.add("closed:spy") }

func spy(rec *recorder) AnyMiddleware {
	return func(next Handler[Unit]) Handler[Unit] { return &unitSpy{next: next, rec: rec} }
}

// One AnyMiddleware value serves at both layers: it sees each unit's kind, its hooks run in
// the chain's order, and the handler after it gets the unit unchanged.
func TestAnyMiddlewareAtBothLayers(t *testing.T) {
	wstest.CheckGoroutines(t)
	for _, tc := range []struct {
		name string
		h    func(rec *recorder, mw AnyMiddleware) ConnHandler
		want string
	}{
		{"frames", func(rec *recorder, mw AnyMiddleware) ConnHandler {
			return Frames(rec.frames(), mw)
		}, "open:spy frame:text text:x frame:close close:\x03\xe8done closed:spy"},
		{"messages", func(rec *recorder, mw AnyMiddleware) ConnHandler {
			return Messages(Text, HandlerFunc(func(_ context.Context, _ *transport.Conn, s string) error {
				rec.add("string:" + s)
				return nil
			}), mw)
		}, "open:spy value:string string:x closed:spy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			s := run(t, tc.h(rec, spy(rec)))
			s.send(true, frame.OpText, "x")
			s.closeClient()
			if got := rec.String(); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Between units, the layer holds no unit, so that an idle connection keeps no payload alive.
func TestAnyMiddlewareKeepsNoUnit(t *testing.T) {
	rec := &recorder{}
	h := wrap[frame.Frame](spy(rec), rec.frames())
	f := frame.Frame{Header: frame.Header{Fin: true, Opcode: frame.OpText}, Payload: []byte("x")}
	if err := h.Serve(context.Background(), nil, f); err != nil {
		t.Fatal(err)
	}
	if in := h.(*anyLayer[frame.Frame]).in; in.Payload != nil {
		t.Fatalf("the layer keeps %q", in.Payload)
	}
	if got := rec.String(); got != "frame:text text:x" {
		t.Fatalf("got %q", got)
	}
}

// A Middleware for another unit type fails when the route is set up, not on a connection.
func TestLayerOfAnotherTypePanics(t *testing.T) {
	forText := Middleware[string](func(next Handler[string]) Handler[string] { return next })
	for _, tc := range []struct {
		name string
		make func()
	}{
		{"Frames", func() { Frames(echo, Recover(nil), forText) }},
		{"Messages", func() { Messages(Bytes, nil, forText) }},
		{"Chain", func() { Chain[frame.Frame](echo, forText) }},
		{"nil", func() { Frames(echo, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if p, ok := recover().(string); !ok || !strings.Contains(p, "in a chain of") {
					t.Fatalf("recovered %v", p)
				}
			}()
			tc.make()
		})
	}
}
