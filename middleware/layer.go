package middleware

import (
	"context"
	"fmt"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// Layer is one middleware in a chain, as Chain, Frames and Messages take it: a Middleware[T],
// which sees the units as they are and works only where they are of type T, or an
// AnyMiddleware, which works whatever their type. Only those two types are Layers.
type Layer interface {
	layer()
}

func (Middleware[T]) layer() {}

func (AnyMiddleware) layer() {}

// AnyMiddleware is middleware that does not look at the type of the units it passes on, so
// that one value serves at every layer (frames or messages of any type) and needs no type
// argument: Recover, Logger, Keepalive and RateLimit are AnyMiddleware. It wraps a
// UnitHandler and is called once per connection, like a Middleware; the UnitHandler it
// returns may implement Opener and Closer.
type AnyMiddleware func(next UnitHandler) UnitHandler

// UnitHandler is the handler an AnyMiddleware wraps and returns, named so that writing one
// takes no type argument; HandlerFunc makes one from a function whose last parameter is a
// Unit.
type UnitHandler = Handler[Unit]

// Unit is the unit an AnyMiddleware's handler is serving, whatever its type: the handler
// passes it on to next to serve it, and must not keep it once it returns. Only the serve
// loop makes Units.
type Unit struct {
	src unitSource
}

// unitSource is the adapter holding the unit in hand.
type unitSource interface {
	frame() (*frame.Frame, bool)
	value() any
}

// Frame returns the unit when it is a frame.Frame (at the frame layer); ok is false for a
// decoded message.
func (u Unit) Frame() (f frame.Frame, ok bool) {
	if u.src == nil {
		return frame.Frame{}, false
	}
	p, ok := u.src.frame()
	if !ok {
		return frame.Frame{}, false
	}
	return *p, true
}

// Value returns the unit itself: a frame.Frame or the decoded message. Putting it in an
// interface allocates for most types, so a middleware on the hot path calls it only when it
// needs the value (Logger does at the debug level).
func (u Unit) Value() any {
	if u.src == nil {
		return nil
	}
	return u.src.value()
}

// anyLayer runs an AnyMiddleware's handler in a chain of units of type T: Serve keeps the
// unit in hand, so that the AnyMiddleware's handler passes it on without putting it in an
// interface, which would allocate.
type anyLayer[T any] struct {
	outer UnitHandler // what the AnyMiddleware made of inner
	next  Handler[T]
	in    T // the unit being served; the zero T between units, so that no payload is kept
}

func (a *anyLayer[T]) Serve(ctx context.Context, c *transport.Conn, in T) error {
	a.in = in
	err := a.outer.Serve(ctx, c, Unit{a})
	var zero T
	a.in = zero
	return err
}

func (a *anyLayer[T]) frame() (*frame.Frame, bool) {
	f, ok := any(&a.in).(*frame.Frame)
	return f, ok
}

func (a *anyLayer[T]) value() any { return a.in }

// Open and Closed call the hooks of the AnyMiddleware's handler; next's are its own layer's.
func (a *anyLayer[T]) Open(ctx context.Context, c *transport.Conn) error {
	if o, ok := a.outer.(Opener); ok {
		return o.Open(ctx, c)
	}
	return nil
}

func (a *anyLayer[T]) Closed(ctx context.Context, c *transport.Conn, err error) {
	if cl, ok := a.outer.(Closer); ok {
		cl.Closed(ctx, c, err)
	}
}

// innerLayer is the next handler as an AnyMiddleware sees it: it serves the unit in hand.
type innerLayer[T any] struct{ a *anyLayer[T] }

func (n innerLayer[T]) Serve(ctx context.Context, c *transport.Conn, _ Unit) error {
	return n.a.next.Serve(ctx, c, n.a.in)
}

// wrap applies m to next. An AnyMiddleware that hands back the handler it got (one that is
// off, such as RateLimit with no rate) adds no layer.
func wrap[T any](m AnyMiddleware, next Handler[T]) Handler[T] {
	a := &anyLayer[T]{next: next}
	inner := innerLayer[T]{a}
	if a.outer = m(inner); a.outer == UnitHandler(inner) {
		return next
	}
	return a
}

// apply applies l to next; l must be a Middleware[T] or an AnyMiddleware (see check).
func apply[T any](l Layer, next Handler[T]) Handler[T] {
	if m, ok := l.(AnyMiddleware); ok {
		return wrap(m, next)
	}
	return l.(Middleware[T])(next)
}

// check panics unless every layer works with units of type T. Frames and Messages call it
// when a route is set up, so that a Middleware for another unit type fails at once rather
// than on the first connection.
func check[T any](mw []Layer) {
	for i, l := range mw {
		switch l.(type) {
		case Middleware[T], AnyMiddleware:
		default:
			var zero T
			panic(fmt.Sprintf("middleware: layer %d is a %T, in a chain of %T units", i, l, zero))
		}
	}
}
