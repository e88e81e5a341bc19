package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/transport"
)

type node struct {
	app *App
	srv *httptest.Server
}

func startNode(t *testing.T, broker hub.Broker, name string) *node {
	a, err := New(broker, name)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		srv.Close()
	})
	return &node{a, srv}
}

func (n *node) dial(t *testing.T, room, name string) *transport.Conn {
	url := "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/rooms/" + room + "?name=" + name
	c, _, err := handshake.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	// Dial returns once the handshake is done, which can be before the server has put the
	// connection in its room: wait for our own join, so that we see whatever follows.
	next(t, c, "join", name)
	return c
}

// next returns the next event of the given type about user (any user for ""), skipping
// the others.
func next(t *testing.T, c *transport.Conn, typ, user string) Out {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, msg, err := c.ReadMessage(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var o Out
		if err := json.Unmarshal(msg, &o); err != nil {
			t.Fatal(err)
		}
		if o.Type == typ && (user == "" || o.User == user) {
			return o
		}
	}
}

func say(t *testing.T, c *transport.Conn, text string) {
	t.Helper()
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte(`{"text":`+jsonQuote(text)+`}`)); err != nil {
		t.Fatal(err)
	}
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestOneNode(t *testing.T) {
	n := startNode(t, nil, "solo")
	res, err := http.Get(n.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "new WebSocket(") {
		t.Fatal("the page has no chat")
	}

	ann := n.dial(t, "go", "ann")
	bob := n.dial(t, "go", "bob")
	cid := n.dial(t, "rust", "cid")
	if j := next(t, ann, "join", "bob"); j.User != "bob" || j.Room != "go" || j.Node != "solo" {
		t.Fatalf("ann saw %+v", j)
	}
	say(t, bob, "  hello gophers ")
	for _, c := range []*transport.Conn{ann, bob} {
		if m := next(t, c, "message", ""); m.User != "bob" || m.Text != "hello gophers" || m.Room != "go" {
			t.Fatalf("got %+v", m)
		}
	}
	say(t, cid, "hello crabs")
	if m := next(t, cid, "message", ""); m.Text != "hello crabs" {
		t.Fatalf("cid got %+v", m)
	}

	res, err = http.Get(n.srv.URL + "/api/rooms/go")
	if err != nil {
		t.Fatal(err)
	}
	var count struct{ Members int }
	json.NewDecoder(res.Body).Decode(&count)
	res.Body.Close()
	if count.Members != 2 {
		t.Fatalf("%d members in go, want 2", count.Members)
	}
	bob.Close(frame.CloseNormal, "")
	if l := next(t, ann, "leave", ""); l.User != "bob" {
		t.Fatalf("ann saw %+v", l)
	}
}

// Two nodes on one broker share their rooms.
func TestTwoNodes(t *testing.T) {
	bus := hub.NewBus()
	a, b := startNode(t, bus.Link(), "a"), startNode(t, bus.Link(), "b")
	ann := a.dial(t, "go", "ann")
	bob := b.dial(t, "go", "bob")
	if j := next(t, ann, "join", "bob"); j.User != "bob" || j.Node != "b" {
		t.Fatalf("ann saw %+v", j)
	}
	say(t, ann, "hi from a")
	if m := next(t, bob, "message", ""); m.User != "ann" || m.Text != "hi from a" || m.Node != "a" {
		t.Fatalf("bob got %+v", m)
	}
}
