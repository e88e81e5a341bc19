package middleware

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"

	"github.com/ecows/ecows/transport"
)

// Logger logs each connection with zerolog, as an access log does each request: an Info event
// "websocket open" when it starts and "websocket close" when it ends, both with the fields
// remote, route, and subprotocol and request_id when set (route and request id from ConnInfo). The close
// event adds duration, frames_in, bytes_in, frames_out and bytes_out (transport.Stats, wire
// bytes), close_code and close_reason (the code of the close handshake, whichever side
// started it; 1006 when the stream ended without one), and error when the connection ended
// abnormally (what ServeConn returns).
//
// When log has Debug enabled, every unit passing through also gets a Debug event: "websocket
// frame" with opcode, fin and length at the frame layer, "websocket message" with type (and
// length for strings and byte slices) at the message layer. Events are built only for enabled
// levels, so a disabled level costs no allocation.
//
// A nil log means the logger in the connection's context (zerolog.Ctx, where hlog puts the
// request's), or zerolog's global logger (package zerolog/log) when the context has none that
// is enabled.
func Logger(log *zerolog.Logger) AnyMiddleware {
	return func(next UnitHandler) UnitHandler {
		return &logger{next: next, base: log}
	}
}

// logger is Logger's handler for one connection.
type logger struct {
	next  UnitHandler
	base  *zerolog.Logger
	log   zerolog.Logger // with the connection's fields; the zero Logger, disabled, until Open
	start time.Time
}

func (l *logger) Open(ctx context.Context, c *transport.Conn) error {
	l.start = time.Now()
	info := ConnInfoFrom(ctx)
	fields := loggerFor(ctx, l.base).With().
		Str("remote", addrString(c.RemoteAddr())).
		Str("route", info.Route)
	// Fields that are often empty are left out rather than logged blank.
	if p := c.Subprotocol(); p != "" {
		fields = fields.Str("subprotocol", p)
	}
	if info.RequestID != "" {
		fields = fields.Str("request_id", info.RequestID)
	}
	l.log = fields.Logger()
	l.log.Info().Msg("websocket open")
	return nil
}

func (l *logger) Serve(ctx context.Context, c *transport.Conn, in Unit) error {
	if e := l.log.Debug(); e.Enabled() {
		if f, ok := in.Frame(); ok {
			e.Str("opcode", f.Opcode.String()).Bool("fin", f.Fin).Int64("length", f.Length).Msg("websocket frame")
			return l.next.Serve(ctx, c, in)
		}
		switch v := in.Value().(type) {
		case string:
			e.Str("type", "string").Int("length", len(v)).Msg("websocket message")
		case []byte:
			e.Str("type", "[]byte").Int("length", len(v)).Msg("websocket message")
		default:
			e.Str("type", fmt.Sprintf("%T", v)).Msg("websocket message")
		}
	}
	return l.next.Serve(ctx, c, in)
}

func (l *logger) Closed(ctx context.Context, c *transport.Conn, err error) {
	if l.start.IsZero() {
		return // refused before this layer opened: no open event to pair with
	}
	code, reason := endStatus(ctx, err)
	s := c.Stats()
	e := l.log.Info().
		Dur("duration", time.Since(l.start)).
		Uint64("frames_in", s.FramesIn).Uint64("bytes_in", s.BytesIn).
		Uint64("frames_out", s.FramesOut).Uint64("bytes_out", s.BytesOut).
		Int("close_code", int(code))
	if reason != "" {
		e = e.Str("close_reason", reason)
	}
	if err != nil {
		e = e.Str("error", err.Error())
	}
	e.Msg("websocket close")
}

// loggerFor returns l, or for a nil l the logger in ctx, or the global one.
func loggerFor(ctx context.Context, l *zerolog.Logger) *zerolog.Logger {
	if l != nil {
		return l
	}
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &zlog.Logger
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
