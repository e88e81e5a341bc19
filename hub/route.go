package hub

import (
	"context"
	"errors"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

// RoomsFunc names the rooms a connection joins when it opens, from its context (chi's URL
// parameters, values set by HTTP middleware or kept with router.Keep).
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

// Rooms returns a middleware that joins each connection of a route to the rooms rooms
// names when the connection opens (its Open hook, so place it after the middleware that may
// refuse a connection) and removes it from the hub when it ends. A connection that cannot
// join is refused: with 1001 Going Away once the hub is closed, 1011 for a broker error.
func Rooms[T any](h *Hub, rooms RoomsFunc) middleware.Middleware[T] {
	return func(next middleware.Handler[T]) middleware.Handler[T] {
		return &roomsLayer[T]{Handler: next, h: h, rooms: rooms}
	}
}

type roomsLayer[T any] struct {
	middleware.Handler[T]
	h     *Hub
	rooms RoomsFunc
}

func (l *roomsLayer[T]) Open(ctx context.Context, c *transport.Conn) error {
	err := l.h.Join(c, l.rooms(ctx, c)...)
	if errors.Is(err, ErrClosed) {
		return &transport.CloseError{Code: frame.CloseGoingAway, Reason: "server shutting down"}
	}
	return err
}

func (l *roomsLayer[T]) Closed(_ context.Context, c *transport.Conn, _ error) {
	l.h.Remove(c)
}
