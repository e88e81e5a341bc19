package router_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
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
	ws.Handle(r, "/rooms/{id}", router.JSON(func(ctx context.Context, c *transport.Conn, m join) error {
		room := chi.URLParamFromCtx(ctx, "id")
		return transport.WriteJSON(ctx, c, welcome{Room: room, Text: "hi " + m.User})
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

// A chi route whose connections join the room named in the URL; the router's Shutdown
// closes the hub too.
func ExampleRooms() {
	ws := router.New()
	h, _ := hub.New(nil)
	ws.CloseOnShutdown(h)
	r := chi.NewRouter()
	ws.Handle(r, "/rooms/{room}", router.Text(func(ctx context.Context, c *transport.Conn, s string) error {
		room := chi.URLParamFromCtx(ctx, "room")
		h.BroadcastExcept(room, c, frame.OpText, []byte(room+": "+s)) // an error concerns other nodes only
		return nil
	}, router.Rooms(h, router.URLParam("room"))), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())

	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/rooms/go"
	ann, _, _ := handshake.Dial(context.Background(), url, nil)
	bob, _, _ := handshake.Dial(context.Background(), url, nil)
	defer ann.CloseNow()
	defer bob.CloseNow()
	for h.Count("go") < 2 {
		time.Sleep(time.Millisecond) // both handlers have joined
	}
	ann.WriteMessage(context.Background(), frame.OpText, []byte("hello"))
	_, msg, _ := bob.ReadMessage(context.Background(), nil)
	fmt.Println(string(msg))
	// Output: go: hello
}
