package middleware

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/rs/zerolog"

	"github.com/ecows/ecows/transport"
)

// Recover turns a panic in the handlers it wraps into an error, so that only the connection
// being served ends, with 1011 Internal Error, and the server and every other connection go
// on. The panic value and the stack are logged as an Error event "websocket handler panic"
// with the fields panic, stack and remote. A nil log means the logger in the connection's
// context, or zerolog's global logger, as for Logger: a panic is never silent.
//
// Recover covers Serve, not the Open and Closed hooks. Put it first in the chain so that it
// covers every middleware after it.
func Recover(log *zerolog.Logger) AnyMiddleware {
	return func(next UnitHandler) UnitHandler {
		return HandlerFunc(func(ctx context.Context, c *transport.Conn, in Unit) (err error) {
			defer func() {
				if p := recover(); p != nil {
					loggerFor(ctx, log).Error().
						Str("panic", fmt.Sprint(p)).
						Str("stack", string(debug.Stack())).
						Str("remote", addrString(c.RemoteAddr())).
						Msg("websocket handler panic")
					err = panicError(p)
				}
			}()
			return next.Serve(ctx, c, in)
		})
	}
}

// panicError is the error a recovered panic ends its connection with; it wraps the panic
// value when that is an error.
func panicError(p any) error {
	if err, ok := p.(error); ok {
		return fmt.Errorf("middleware: handler panicked: %w", err)
	}
	return fmt.Errorf("middleware: handler panicked: %v", p)
}
