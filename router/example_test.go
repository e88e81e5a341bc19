package router_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

type join struct {
	User string `json:"user"`
}

type welcome struct {
	Room, Text string
}

// A typed JSON endpoint with a chi URL parameter.
func Example() {
	ws := router.New()
	r := chi.NewRouter()
	ws.Mount(r, "/rooms/{id}", router.JSON(func(ctx context.Context, c *transport.Conn, m join) error {
		room := chi.URLParamFromCtx(ctx, "id")
		return middleware.Send(c, middleware.JSON[welcome]{}, welcome{Room: room, Text: "hi " + m.User})
	}), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())

	c, _, err := handshake.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/rooms/go", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(frame.CloseNormal, "")
	c.WriteMessage(context.Background(), frame.OpText, []byte(`{"user":"ann"}`))
	_, msg, _ := c.ReadMessage(context.Background(), nil)
	fmt.Println(string(msg))
	// Output: {"Room":"go","Text":"hi ann"}
}
