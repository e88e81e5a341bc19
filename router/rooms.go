package router

import (
	"context"
	"errors"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

// RoomsFunc names the rooms a connection joins when it opens, from its context (chi's URL
// parameters, values set by HTTP middleware or kept with Keep).
type RoomsFunc func(ctx context.Context, c *transport.Conn) []string

// URLParam returns a RoomsFunc that puts a connection in the room named by the chi URL
// parameter name, as in "/rooms/{room}"; no room when the parameter is empty.
func URLParam(name string) RoomsFunc {
	return func(ctx context.Context, _ *transport.Conn) []string {
		if room := chi.URLParamFromCtx(ctx, name); room != "" {
			return []string{room}
		}
		return nil
	}
}

// Rooms returns a middleware that joins each connection of a route to the rooms of h that
// rooms names when the connection opens (its Open hook, so place it after the middleware
// that may refuse a connection) and removes it from h when it ends. A connection that
// cannot join is refused: with 1001 Going Away once h is closed, 1011 for a broker error. It
// works with handlers of any unit type. CloseOnShutdown(h) makes the router's Shutdown
// close h too.
func Rooms(h *hub.Hub, rooms RoomsFunc) middleware.AnyMiddleware {
	return func(next middleware.UnitHandler) middleware.UnitHandler {
		return &roomsLayer{UnitHandler: next, h: h, rooms: rooms}
	}
}

type roomsLayer struct {
	middleware.UnitHandler
	h     *hub.Hub
	rooms RoomsFunc
}

func (l *roomsLayer) Open(ctx context.Context, c *transport.Conn) error {
	err := l.h.Join(c, l.rooms(ctx, c)...)
	if errors.Is(err, hub.ErrClosed) {
		return &transport.CloseError{Code: frame.CloseGoingAway, Reason: "server shutting down"}
	}
	return err
}

func (l *roomsLayer) Closed(_ context.Context, c *transport.Conn, _ error) {
	l.h.Remove(c)
}
