package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
	"github.com/ecows/ecows/transport"
)

// chatter is a browser in the tests of resumption: it keeps the lines it got and the last
// position, as the page does.
type chatter struct {
	t    *testing.T
	n    *node
	name string
	c    *transport.Conn
	last hub.Position
	got  map[string][]string // the texts of the lines got, by sender
	lost []Out               // the gap and resync lines got
}

func newChatter(t *testing.T, n *node, name string) *chatter {
	ch := &chatter{t: t, n: n, name: name, got: make(map[string][]string)}
	ch.connect()
	return ch
}

// connect dials the room "go", with ?since= the last position when there is one, and waits
// for its own arrival, so that it gets whatever is said from then on.
func (ch *chatter) connect() {
	ch.t.Helper()
	u := "ws" + strings.TrimPrefix(ch.n.srv.URL, "http") + "/rooms/go?name=" + ch.name
	if !ch.last.IsZero() {
		u += "&since=" + url.QueryEscape(ch.last.String())
	}
	c, _, err := handshake.Dial(context.Background(), u, nil)
	if err != nil {
		ch.t.Fatal(err)
	}
	ch.t.Cleanup(func() { c.CloseNow() })
	ch.c = c
	ch.read(func(o Out) bool { return o.Type == "join" && o.User == ch.name })
}

// read records what arrives until done says so.
func (ch *chatter) read(done func(Out) bool) {
	ch.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, msg, err := ch.c.ReadMessage(ctx, nil)
		if err != nil {
			ch.t.Fatalf("%s: %v", ch.name, err)
		}
		var o Out
		if err := json.Unmarshal(msg, &o); err != nil {
			ch.t.Fatal(err)
		}
		switch o.Type {
		case "message":
			ch.got[o.User] = append(ch.got[o.User], o.Text)
		case "gap", "resync":
			ch.lost = append(ch.lost, o)
		}
		if !o.Pos.IsZero() {
			ch.last = o.Pos
		}
		if done(o) {
			return
		}
	}
}

// await reads until it has want lines of every sender.
func (ch *chatter) await(want map[string][]string) {
	ch.t.Helper()
	enough := func() bool {
		for from, lines := range want {
			if len(ch.got[from]) < len(lines) {
				return false
			}
		}
		return true
	}
	if !enough() {
		ch.read(func(Out) bool { return enough() })
	}
}

// engine is where the nodes of a test meet: kill and back, when set, take it down and bring
// it back with its logs.
type engine struct {
	link       func() hub.Broker
	kill, back func()
}

// Lines said while a browser is away, or while the broker is down, all arrive, once each and
// in order per sender, at every browser of the room, on either node.
func TestNoLineLost(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { // registered first, so it runs after every other cleanup
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines left, %d before", n, before)
		}
	})
	for _, tc := range []struct {
		name   string
		engine func(t *testing.T) engine
	}{
		{"bus", func(*testing.T) engine { return engine{link: hub.NewBus().Link} }},
		{"engine restarted", func(t *testing.T) engine {
			f := hubtest.NewFake()
			return engine{link: func() hub.Broker { return f.Link(t) }, kill: func() { f.Kill(t) }, back: func() { f.Restart(t) }}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.engine(t)
			a, b := startNode(t, e.link(), "a"), startNode(t, e.link(), "b")
			ann, bob, cid := newChatter(t, a, "ann"), newChatter(t, b, "bob"), newChatter(t, b, "cid")
			said := make(map[string][]string)
			talk := func(phase string, chs ...*chatter) {
				for i := range 3 {
					for _, ch := range chs {
						text := fmt.Sprintf("%s %s %d", ch.name, phase, i)
						say(t, ch.c, text)
						said[ch.name] = append(said[ch.name], text)
					}
				}
			}
			all := []*chatter{ann, bob, cid}
			talk("before", all...)
			for _, ch := range all {
				ch.await(said)
			}
			if e.kill != nil {
				e.kill()
				talk("while the engine is down", all...)
				e.back()
				// Once it is back, each node's lines reach the other, and new lines come
				// after them.
				talk("after the engine came back", all...)
				for _, ch := range all {
					ch.await(said)
				}
			}
			cid.c.CloseNow() // the browser loses its connection
			talk("while cid is away", ann, bob)
			ann.await(said)
			bob.await(said)
			cid.connect()
			talk("after cid came back", all...)
			for _, ch := range all {
				ch.await(said)
			}
			for _, ch := range all {
				if !maps.EqualFunc(ch.got, said, slices.Equal) {
					t.Errorf("%s got\n%q\nwant\n%q", ch.name, ch.got, said)
				}
				if len(ch.lost) > 0 {
					t.Errorf("%s was told of lost lines: %+v", ch.name, ch.lost)
				}
			}
		})
	}
}

// A browser that comes back after the history started again (its engine lost it) gets a
// resync line naming the position it came back with, and the browsers that stayed get a gap
// line naming the last position of the old history; all go on live.
func TestHistoryLost(t *testing.T) {
	f := hubtest.NewFake()
	n := startNode(t, f.Link(t), "a")
	ann, bob := newChatter(t, n, "ann"), newChatter(t, n, "bob")
	say(t, bob.c, "first")
	ann.await(map[string][]string{"bob": {"first"}})
	bob.await(map[string][]string{"bob": {"first"}})
	old := bob.last
	bob.c.CloseNow()
	ann.read(func(o Out) bool { return o.Type == "leave" })
	annOld := ann.last
	f.Forget(t) // the engine restarts without its logs
	say(t, ann.c, "second")
	// The gap line goes to the members apart from the room's lines, before or after "second".
	ann.read(func(o Out) bool { return o.Type == "gap" })
	if g := ann.lost[0]; !strings.Contains(g.Text, annOld.String()) || !strings.Contains(g.Text, "started again") {
		t.Errorf("ann got %+v, after %s", g, annOld)
	}
	ann.await(map[string][]string{"bob": {"first"}, "ann": {"second"}})
	if ann.last.Epoch == old.Epoch {
		t.Fatalf("the history kept its epoch %q", old.Epoch)
	}

	bob.connect() // with ?since=old, which the new history does not know
	if len(bob.lost) != 1 || bob.lost[0].Type != "resync" || !strings.Contains(bob.lost[0].Text, old.String()) {
		t.Fatalf("bob was told %+v", bob.lost)
	}
	say(t, ann.c, "third")
	bob.await(map[string][]string{"ann": {"third"}})
	if got := bob.got["ann"]; !slices.Equal(got, []string{"third"}) {
		t.Errorf("bob got %q from ann", got)
	}
}

// A malformed ?since= is refused before the upgrade.
func TestBadSince(t *testing.T) {
	n := startNode(t, nil, "a")
	for _, since := range []string{"7", "e:x", "e:+7"} {
		u := "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/rooms/go?since=" + url.QueryEscape(since)
		_, _, err := handshake.Dial(context.Background(), u, nil)
		var se *handshake.StatusError
		if !errors.As(err, &se) || se.Response.StatusCode != http.StatusBadRequest {
			t.Errorf("since=%q: %v, want a 400", since, err)
		}
	}
}
