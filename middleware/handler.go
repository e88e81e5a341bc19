package middleware

import (
	"context"
	"reflect"

	"github.com/ecows/ecows/transport"
)

// Handler serves one inbound unit (a frame or a decoded message) on a connection. A non-nil
// error ends the connection: with the close code it carries (a *transport.CloseError or
// *frame.ProtocolError), or 1011 otherwise, as for the *transport.UsageError of a send the
// handler got wrong.
type Handler[T any] interface {
	Serve(ctx context.Context, c *transport.Conn, in T) error
}

// HandlerFunc returns a Handler that serves each unit with fn. T comes from fn's last
// parameter, so a call needs no type argument: HandlerFunc(func(ctx context.Context,
// c *transport.Conn, f frame.Frame) error {...}) is a Handler[frame.Frame].
func HandlerFunc[T any](fn func(ctx context.Context, c *transport.Conn, in T) error) Handler[T] {
	return handlerFunc[T](fn)
}

// handlerFunc is the Handler HandlerFunc returns.
type handlerFunc[T any] func(ctx context.Context, c *transport.Conn, in T) error

func (f handlerFunc[T]) Serve(ctx context.Context, c *transport.Conn, in T) error {
	return f(ctx, c, in)
}

// Middleware wraps a handler of units of type T. It is called once per connection. Middleware
// that does not look at the units is better written as an AnyMiddleware, which needs no
// type argument.
type Middleware[T any] func(next Handler[T]) Handler[T]

// Intercept returns a Middleware that serves each unit with fn, which passes it on (or a
// unit of its own making) by calling next, or does not. T comes from fn's parameters, so
// the call needs no type argument. fn serves every connection of the route: a middleware
// with state of its own per connection, or with Opener and Closer hooks, is a Middleware
// written in full.
func Intercept[T any](fn func(ctx context.Context, c *transport.Conn, in T, next func(context.Context, *transport.Conn, T) error) error) Middleware[T] {
	return func(next Handler[T]) Handler[T] {
		serve := next.Serve // made once per connection, not once per unit
		return handlerFunc[T](func(ctx context.Context, c *transport.Conn, in T) error {
			return fn(ctx, c, in, serve)
		})
	}
}

// Opener is implemented by handlers that act when a connection starts, before its first
// unit. An error refuses the connection, which is closed with the error's code (or 1011).
type Opener interface {
	Open(ctx context.Context, c *transport.Conn) error
}

// Closer is implemented by handlers that act when a connection has ended; err is what ended
// it (nil after a clean close handshake). Closed is called even when an Open hook refused the
// connection, on the layers whose Open did not run too, so a Closer must cope with a
// connection it did not see open.
type Closer interface {
	Closed(ctx context.Context, c *transport.Conn, err error)
}

// Chain wraps h in mw, the first outermost, so Chain(h, a, b) serves a unit through a, then
// b, then h. The result is an Opener and a Closer that calls the hooks of every layer that
// has them: Open from the outermost in, Closed from the innermost out. Each layer must be a
// Middleware[T] or an AnyMiddleware; Chain panics otherwise.
func Chain[T any](h Handler[T], mw ...Layer) Handler[T] {
	check[T](mw)
	layers := make([]any, 0, len(mw)+1)
	layers = append(layers, h)
	for i := len(mw) - 1; i >= 0; i-- {
		prev := h
		if h = apply(mw[i], h); !repeats(h, prev) {
			layers = append(layers, h)
		}
	}
	return &chain[T]{Handler: h, layers: layers}
}

// repeats reports whether h is prev, as a middleware that is off (Keepalive with no
// interval) hands back the handler it got, whose hooks must not run once more for it. Only
// pointers are compared: other handler types, such as HandlerFunc's, may not be comparable.
func repeats[T any](h, prev Handler[T]) bool {
	t := reflect.TypeOf(h)
	return t != nil && t.Kind() == reflect.Pointer && t == reflect.TypeOf(prev) && h == prev
}

// chain is a composed handler with its layers, innermost first.
type chain[T any] struct {
	Handler[T]
	layers []any
}

// Open calls Open on every layer, from the outermost in, and stops at the first error.
func (ch *chain[T]) Open(ctx context.Context, c *transport.Conn) error {
	for i := len(ch.layers) - 1; i >= 0; i-- {
		if o, ok := ch.layers[i].(Opener); ok {
			if err := o.Open(ctx, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Closed calls Closed on every layer, from the innermost out.
func (ch *chain[T]) Closed(ctx context.Context, c *transport.Conn, err error) {
	for _, l := range ch.layers {
		if cl, ok := l.(Closer); ok {
			cl.Closed(ctx, c, err)
		}
	}
}
