// Package app is the chat of examples/chat, kept apart from its main so that the two-node
// variants (broker/nats/example, broker/redis/example) serve the very same chat over a
// shared broker.
package app

import (
	"context"
	_ "embed" // the page
	"encoding/json"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

//go:embed index.html
var page []byte

// In is what a browser sends: a line of chat.
type In struct {
	Text string `json:"text"`
}

// Out is what every member of a room gets: a line of chat, someone joining or leaving, or
// a warning that messages from other nodes may be missing.
type Out struct {
	Type string    `json:"type"` // "message", "join", "leave" or "gap"
	Room string    `json:"room"`
	User string    `json:"user,omitempty"`
	Text string    `json:"text,omitempty"`
	Node string    `json:"node"` // the node the user is connected to
	Time time.Time `json:"time"`
}

// App is the chat: a page at /, a WebSocket per room at /rooms/{room}?name=NAME, and the
// room's members on this node at /api/rooms/{room}.
type App struct {
	hub *hub.Hub
	ws  *router.Router
	mux chi.Router
}

// New returns the chat on a hub of its own, linked to the other nodes by broker (nil for a
// single node) under the name node ("" for a random one).
func New(broker hub.Broker, node string) (*App, error) {
	a := &App{ws: router.New(), mux: chi.NewRouter()}
	h, err := hub.New(&hub.Options{
		NodeID: node,
		Broker: broker,
		OnSlow: hub.SlowDrop, // a browser that cannot keep up misses lines rather than slow the room
		OnGap:  func(g hub.Gap) { go a.gap(g) },
	})
	if err != nil {
		return nil, err
	}
	a.hub = h
	a.ws.CloseOnShutdown(h) // the router's Shutdown closes the hub
	a.mux.Get("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	a.mux.Get("/api/rooms/{room}", a.members)
	// The connection keeps the user's name, not the whole upgrade request.
	a.ws.Handle(a.mux.With(router.Keep(userKey{}, userName)), "/rooms/{room}", router.JSON(a.chat,
		router.Rooms(h, router.URLParam("room")), // join the room in the URL
		a.presence(),                             // then tell the room
		middleware.RateLimit(middleware.RateLimitOptions{Rate: 5, Burst: 10}), // no floods
	), &handshake.ServerOptions{Options: transport.Options{MaxPayloadLen: 4096}})
	return a, nil
}

// ServeHTTP serves the chat.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Node returns the node's name.
func (a *App) Node() string { return a.hub.Node() }

// Shutdown says goodbye (1001) to every browser and closes the hub.
func (a *App) Shutdown(ctx context.Context) error { return a.ws.Shutdown(ctx) }

func (a *App) chat(ctx context.Context, _ *transport.Conn, m In) error {
	text := strings.TrimSpace(m.Text)
	if text == "" {
		return nil
	}
	a.broadcast(Out{Type: "message", Room: chi.URLParamFromCtx(ctx, "room"), User: user(ctx), Text: text})
	return nil
}

// broadcast sends v to its room on every node. While the broker is down only this node's
// members get it; the others will hear of a gap.
func (a *App) broadcast(v Out) {
	v.Node, v.Time = a.hub.Node(), time.Now().UTC()
	if err := a.hub.BroadcastJSON(v.Room, v); err != nil {
		log.Printf("chat: room %q: %v", v.Room, err)
	}
}

// gap warns this node's members of a room that messages from other nodes may be missing.
func (a *App) gap(g hub.Gap) {
	text := "the link to the other nodes was lost for a while: messages may be missing"
	if g.Err == nil {
		text = "messages from another node were lost on the way"
	}
	b, _ := json.Marshal(Out{Type: "gap", Room: g.Topic, Text: text, Node: a.hub.Node(), Time: time.Now().UTC()})
	for _, c := range a.hub.Members(g.Topic) {
		a.hub.Send(c, frame.OpText, b)
	}
}

func (a *App) members(w http.ResponseWriter, r *http.Request) {
	room := chi.URLParam(r, "room")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"room": room, "node": a.hub.Node(), "members": a.hub.Count(room)})
}

type userKey struct{}

// userName is the name the browser gave in the URL, or "anonymous".
func userName(r *http.Request) string {
	name := "anonymous"
	if n := strings.TrimSpace(r.URL.Query().Get("name")); n != "" {
		name = n
	}
	if r := []rune(name); len(r) > 32 {
		name = string(r[:32])
	}
	return name
}

// user is the name userName gave the connection of ctx when it was upgraded.
func user(ctx context.Context) string {
	if name, _ := ctx.Value(userKey{}).(string); name != "" {
		return name
	}
	return "anonymous"
}

// presence is a middleware for its Open and Closed hooks only: it announces arrivals and
// departures. It does not look at the messages, so it is an AnyMiddleware.
func (a *App) presence() middleware.AnyMiddleware {
	return func(next middleware.UnitHandler) middleware.UnitHandler {
		return &presenceLayer{UnitHandler: next, a: a}
	}
}

type presenceLayer struct {
	middleware.UnitHandler
	a *App
}

func (l *presenceLayer) Open(ctx context.Context, _ *transport.Conn) error {
	l.a.broadcast(Out{Type: "join", Room: chi.URLParamFromCtx(ctx, "room"), User: user(ctx)})
	return nil
}

func (l *presenceLayer) Closed(ctx context.Context, c *transport.Conn, _ error) {
	l.a.hub.Remove(c) // before the news, which it need not get
	l.a.broadcast(Out{Type: "leave", Room: chi.URLParamFromCtx(ctx, "room"), User: user(ctx)})
}
