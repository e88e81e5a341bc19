package router

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

const wait = 5 * time.Second

// A route puts its connections in the room named by its URL, the sender is skipped, and the
// router's Shutdown closes the hub registered with CloseOnShutdown.
func TestRooms(t *testing.T) {
	wstest.CheckGoroutines(t)
	ws, h, ann, bob, cid := roomsOf(t, func(h *hub.Hub) middleware.ConnHandler {
		return Text(func(ctx context.Context, c *transport.Conn, s string) error {
			h.BroadcastExcept(chi.URLParamFromCtx(ctx, "room"), c, frame.OpText, []byte(s))
			return nil
		}, Rooms(h, URLParam("room")))
	})
	ann.WriteMessage(context.Background(), frame.OpText, []byte("hi gophers"))
	if got := recvText(t, bob); got != "hi gophers" {
		t.Fatalf("bob got %q", got)
	}
	for name, c := range map[string]*transport.Conn{"ann": ann, "cid": cid} {
		if f, err := c.RecvFrame(50 * time.Millisecond); err == nil {
			t.Fatalf("%s got %q", name, f.Payload)
		}
	}
	bob.Close(frame.CloseNormal, "")
	deadline := time.Now().Add(wait)
	for h.Count("go") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("bob stayed in the room after closing")
		}
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returns once the hub's Close has.
	if err := h.Broadcast("go", frame.OpText, []byte("late")); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Broadcast after the router's Shutdown: %v", err)
	}
	// A connection that comes to a closed hub is refused with 1001.
	c := New()
	c.CloseOnShutdown(h)
	r2 := chi.NewRouter()
	c.Handle(r2, "/", Text(func(context.Context, *transport.Conn, string) error { return nil }, Rooms(h, URLParam("room"))), nil)
	srv2 := httptest.NewServer(r2)
	defer srv2.Close()
	defer c.Shutdown(context.Background())
	late := dialtest.Dial(t, wsURL(srv2, "/"), nil)
	if _, _, err := late.ReadMessage(ctx, nil); !isClose(err, frame.CloseGoingAway) {
		t.Fatalf("a connection to a closed hub: %v", err)
	}
}

// A typed JSON endpoint broadcasts a typed value to the room in its URL: every member the
// route put there, the sender included, reads back the value sent, and a member of another
// room reads nothing.
func TestRoomsBroadcastJSON(t *testing.T) {
	wstest.CheckGoroutines(t)
	ws, _, ann, bob, cid := roomsOf(t, func(h *hub.Hub) middleware.ConnHandler {
		return JSON(func(ctx context.Context, c *transport.Conn, m chatIn) error {
			room := chi.URLParamFromCtx(ctx, "room")
			return h.BroadcastJSON(room, chatOut{Room: room, Line: m.User + ": " + m.Text})
		}, Rooms(h, URLParam("room")))
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	defer ws.Shutdown(ctx)
	if err := transport.WriteJSON(ctx, ann, chatIn{User: "ann", Text: "héllo <b>"}); err != nil {
		t.Fatal(err)
	}
	want := chatOut{Room: "go", Line: "ann: héllo <b>"}
	for name, c := range map[string]*transport.Conn{"ann": ann, "bob": bob} {
		var got chatOut
		if err := transport.ReadJSON(ctx, c, &got); err != nil || got != want {
			t.Fatalf("%s got %+v (%v), want %+v", name, got, err, want)
		}
	}
	if f, err := cid.RecvFrame(50 * time.Millisecond); err == nil {
		t.Fatalf("a member of another room got %q", f.Payload)
	}
}

// roomsOf serves at /rooms/{room} the handler route makes of a new hub, which the router's
// Shutdown closes; it dials ann and bob into room go and cid into room rust, and returns
// once the route has put the three in their rooms.
func roomsOf(t *testing.T, route func(h *hub.Hub) middleware.ConnHandler) (ws *Router, h *hub.Hub, ann, bob, cid *transport.Conn) {
	t.Helper()
	ws = New()
	h, err := hub.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.CloseOnShutdown(h)
	r := chi.NewRouter()
	ws.Handle(r, "/rooms/{room}", route(h), &handshake.ServerOptions{Options: transport.Options{CloseTimeout: 100 * time.Millisecond}})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	ann, bob, cid = dialtest.Dial(t, wsURL(srv, "/rooms/go"), nil), dialtest.Dial(t, wsURL(srv, "/rooms/go"), nil), dialtest.Dial(t, wsURL(srv, "/rooms/rust"), nil)
	deadline := time.Now().Add(wait)
	for h.Count("go") != 2 || h.Count("rust") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("members: go %d, rust %d", h.Count("go"), h.Count("rust"))
		}
		time.Sleep(time.Millisecond)
	}
	return ws, h, ann, bob, cid
}

func isClose(err error, code frame.CloseCode) bool {
	var ce *transport.CloseError
	return errors.As(err, &ce) && ce.Code == code
}

// closer records when it was closed, and returns err.
type closer struct {
	closed chan struct{}
	err    error
}

func (c *closer) Close() error {
	close(c.closed)
	return c.err
}

// Shutdown closes what CloseOnShutdown registered once it has told the connections 1001,
// returns their errors, and closes at once what is registered after it began.
func TestCloseOnShutdown(t *testing.T) {
	wstest.CheckGoroutines(t)
	ws := New()
	r := chi.NewRouter()
	ws.Handle(r, "/", Text(func(context.Context, *transport.Conn, string) error { return nil }), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := dialtest.Dial(t, wsURL(srv, "/"), nil)
	boom := errors.New("boom")
	a, b := &closer{closed: make(chan struct{})}, &closer{closed: make(chan struct{}), err: boom}
	ws.CloseOnShutdown(a)
	ws.CloseOnShutdown(b)
	for ws.Len() != 1 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- ws.Shutdown(context.Background()) }()
	if _, _, err := c.ReadMessage(context.Background(), nil); err != nil && !isClose(err, frame.CloseGoingAway) {
		t.Fatalf("client: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Shutdown did not return")
	}
	for _, cl := range []*closer{a, b} {
		select {
		case <-cl.closed:
		default:
			t.Fatal("not closed")
		}
	}
	late := &closer{closed: make(chan struct{})}
	ws.CloseOnShutdown(late)
	select {
	case <-late.closed:
	default:
		t.Fatal("registered after Shutdown, not closed")
	}
	if err := ws.Shutdown(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// recvText returns the text of the next message on c.
func recvText(t *testing.T, c *transport.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, msg, err := c.ReadMessage(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(msg)
}
