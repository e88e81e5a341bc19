// Package app is the chat of examples/chat, kept apart from its main so that the two-node
// variants (broker/nats/example, broker/redis/example) serve the very same chat over a
// shared broker.
package app

import (
	"context"
	_ "embed" // the page
	"encoding/json"
	"errors"
	"fmt"
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
// a warning that lines are missing ("gap": the hub lost some of the room's history; "resync":
// the history no longer reached back to the position the browser came back with).
type Out struct {
	Type string `json:"type"` // "message", "join", "leave", "gap" or "resync"
	// Pos is the line's position in the room's history, which the hub's stamp adds to each
	// line of the history; the page gives back the last one it got, as ?since=, when it
	// reconnects. Lines sent while the broker is down, and gap lines, have none.
	Pos  hub.Position `json:"pos,omitzero"`
	Room string       `json:"room"`
	User string       `json:"user,omitempty"`
	Text string       `json:"text,omitempty"`
	Node string       `json:"node"` // the node the user is connected to
	Time time.Time    `json:"time"`
}

// App is the chat: a page at /, a WebSocket per room at /rooms/{room}?name=NAME[&since=POS],
// and the room's members on this node at /api/rooms/{room}. Rooms keep their last lines
// (hub.Options.History), so that a browser that comes back with the last position it saw gets what it
// missed before the live lines.
type App struct {
	hub *hub.Hub
	ws  *router.Router
	mux chi.Router
}

// New returns the chat on a hub of its own, linked to the other nodes by broker (nil for a
// single node: the hub's own Bus) under the name node ("" for a random one). The broker
// must be a hub.Log (hub.ErrNotLog otherwise): it keeps the rooms' history, the last 1,000
// lines of 10 minutes at most, so every node on it must run this chat (or another hub with
// Options.History).
func New(broker hub.Broker, node string) (*App, error) {
	a := &App{ws: router.New(), mux: chi.NewRouter()}
	h, err := hub.New(&hub.Options{
		NodeID: node,
		Broker: broker,
		// A browser that was away longer than Age, or missed more than Len lines, gets a
		// "resync" line instead of what it missed.
		History: &hub.HistoryOptions{Len: 1000, Age: 10 * time.Minute, Stamp: hub.StampJSON("pos")},
		// A browser that cannot keep up is disconnected rather than slow the room; it comes
		// back with its last position and gets what it missed from the history.
		OnSlow: hub.SlowEvict,
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
	// The connection keeps the user's name and where it comes back from, not the whole
	// upgrade request.
	a.ws.Handle(a.mux.With(router.Keep(userKey{}, userName), keepSince), "/rooms/{room}", router.JSON(a.chat,
		a.membership(), // join the room in the URL and tell it
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

// broadcast adds v to its room's history, which every node delivers to its members. While
// the broker is down this node's members get it at once and the others once it is back.
func (a *App) broadcast(v Out) {
	v.Node, v.Time = a.hub.Node(), time.Now().UTC()
	b, err := json.Marshal(v)
	if err != nil {
		log.Printf("chat: room %q: %v", v.Room, err)
		return
	}
	// ErrLinkDown is no loss: the line waits in the hub's outbox for the broker. ErrClosed
	// comes of the departures announced while the chat shuts down.
	_, err = a.hub.Publish(v.Room, frame.OpText, b)
	if err != nil && !errors.Is(err, hub.ErrLinkDown) && !errors.Is(err, hub.ErrClosed) {
		log.Printf("chat: room %q: %v", v.Room, err)
	}
}

// gap tells this node's members of a room which lines of its history they will not get.
func (a *App) gap(g hub.Gap) {
	var text string
	var nr *hub.NotRecoverableError
	switch {
	case errors.As(g.Err, &nr):
		text = fmt.Sprintf("the room's history started again: lines after %s are lost", nr.After)
	case g.Epoch != "" && g.First == g.Last:
		text = fmt.Sprintf("line %s of the room's history was lost", hub.Position{Epoch: g.Epoch, Offset: g.First})
	case g.Epoch != "":
		text = fmt.Sprintf("lines %s to %s of the room's history were lost",
			hub.Position{Epoch: g.Epoch, Offset: g.First}, hub.Position{Epoch: g.Epoch, Offset: g.Last})
	case g.Err == nil:
		text = "lines from another node were lost on the way"
	default:
		text = "the link to the other nodes was lost for a while: lines may be missing"
	}
	a.send(g.Topic, Out{Type: "gap", Room: g.Topic, Text: text}, a.hub.Members(g.Topic)...)
}

// send sends v to some of room's members on this node only, outside the history.
func (a *App) send(room string, v Out, to ...*transport.Conn) {
	v.Node, v.Time = a.hub.Node(), time.Now().UTC()
	b, _ := json.Marshal(v)
	for _, c := range to {
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

type sinceKey struct{}

// keepSince keeps the position of ?since= in the request's context for the connection, and
// refuses a malformed one with 400 before the upgrade.
func keepSince(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pos, err := hub.ParsePosition(r.URL.Query().Get("since"))
		if err != nil {
			http.Error(w, "since: "+err.Error(), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sinceKey{}, pos)))
	})
}

// membership is a middleware for its Open and Closed hooks only: it puts the connection in
// the room of the URL, after what it missed since ?since=, and announces arrivals and
// departures. It does not look at the messages, so it is an AnyMiddleware.
func (a *App) membership() middleware.AnyMiddleware {
	return func(next middleware.UnitHandler) middleware.UnitHandler {
		return &memberLayer{UnitHandler: next, a: a}
	}
}

type memberLayer struct {
	middleware.UnitHandler
	a *App
}

func (l *memberLayer) Open(ctx context.Context, c *transport.Conn) error {
	room := chi.URLParamFromCtx(ctx, "room")
	since, _ := ctx.Value(sinceKey{}).(hub.Position)
	err := l.a.hub.JoinSince(c, room, since)
	var nr *hub.NotRecoverableError
	switch {
	case errors.As(err, &nr):
		// c is in the room all the same, live: say what it cannot get back.
		l.a.send(room, Out{Type: "resync", Room: room,
			Text: fmt.Sprintf("the room's history no longer reaches back to %s: lines since then are missing", nr.After)}, c)
	case errors.Is(err, hub.ErrClosed):
		return &transport.CloseError{Code: frame.CloseGoingAway, Reason: "server shutting down"}
	case err != nil:
		return err
	}
	l.a.broadcast(Out{Type: "join", Room: room, User: user(ctx)})
	return nil
}

func (l *memberLayer) Closed(ctx context.Context, c *transport.Conn, _ error) {
	l.a.hub.Remove(c) // before the news, which it need not get
	l.a.broadcast(Out{Type: "leave", Room: chi.URLParamFromCtx(ctx, "room"), User: user(ctx)})
}
