package hubtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ecows/ecows/transport"
)

// Pipe returns both ends of a WebSocket connection over net.Pipe: server, configured with
// opts (nil for the defaults), to put in a hub, and client to read what the hub sends. Both
// are closed when the test ends. net.Pipe has no buffer, so a client nobody reads from
// stalls the server's writes at once.
func Pipe(t testing.TB, opts *transport.Options) (client, server *transport.Conn) {
	a, b := net.Pipe()
	client = transport.NewConn(a, transport.Client, transport.Setup{}, &transport.Options{CloseTimeout: 100 * time.Millisecond})
	server = transport.NewConn(b, transport.Server, transport.Setup{}, opts)
	t.Cleanup(func() {
		client.CloseNow()
		server.CloseNow()
	})
	return client, server
}

// inbox reads a client connection's messages into a channel until the connection ends.
type inbox struct {
	c    *transport.Conn
	msgs chan string
	done chan struct{}
}

func newInbox(t testing.TB, c *transport.Conn) *inbox {
	in := &inbox{c: c, msgs: make(chan string, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		var buf []byte
		for {
			_, msg, err := c.ReadMessage(context.Background(), buf[:0])
			if err != nil {
				return
			}
			buf = msg
			select {
			case in.msgs <- string(msg):
			default:
				t.Error("inbox overflow")
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.CloseNow()
		<-in.done
	})
	return in
}

// next returns the next message, or fails the test after wait.
func (in *inbox) next(t testing.TB, wait time.Duration) string {
	t.Helper()
	select {
	case m := <-in.msgs:
		return m
	case <-time.After(wait):
		t.Fatalf("no message in %v", wait)
		return ""
	}
}

// until reads messages until one satisfies ok, and returns it, or fails after wait.
func (in *inbox) until(t testing.TB, wait time.Duration, ok func(string) bool) string {
	t.Helper()
	m, found := in.match(wait, ok)
	if !found {
		t.Fatalf("no matching message in %v", wait)
	}
	return m
}

// within reports whether a message that satisfies ok arrives within d.
func (in *inbox) within(d time.Duration, ok func(string) bool) bool {
	_, found := in.match(d, ok)
	return found
}

// match reads messages until one satisfies ok and returns it, or reports after d that none
// did.
func (in *inbox) match(d time.Duration, ok func(string) bool) (string, bool) {
	deadline := time.After(d)
	for {
		select {
		case m := <-in.msgs:
			if ok(m) {
				return m, true
			}
		case <-deadline:
			return "", false
		}
	}
}

// eventually polls cond every few milliseconds until it holds, or fails the test after wait.
func eventually(t testing.TB, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
