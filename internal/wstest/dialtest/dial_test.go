package dialtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// fakeTB is a testing.TB whose cleanups run at end and whose Fatalf ends only the goroutine
// calling it, recording the message, so that a test can watch what Dial does to its test.
type fakeTB struct {
	testing.TB
	cleanups []func()
	fatal    string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) end() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// dialIn runs Dial on its own goroutine, where fakeTB's Fatalf may end it.
func dialIn(tb *fakeTB, url string, opts *handshake.DialOptions) *transport.Conn {
	got := make(chan *transport.Conn, 1)
	go func() {
		defer close(got)
		got <- Dial(tb, url, opts)
	}()
	return <-got
}

func TestDial(t *testing.T) {
	wstest.CheckGoroutines(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refused" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		c, err := handshake.Upgrade(w, r, &handshake.ServerOptions{Subprotocols: []string{"chat"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		if op, msg, err := c.ReadMessage(context.Background(), nil); err == nil {
			c.WriteMessage(context.Background(), op, msg)
		}
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	tb := &fakeTB{TB: t}
	c := dialIn(tb, url, &handshake.DialOptions{Subprotocols: []string{"chat"}})
	if c == nil || tb.fatal != "" {
		t.Fatalf("Dial failed the test: %s", tb.fatal)
	}
	if c.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q: the options did not reach the handshake", c.Subprotocol())
	}
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(context.Background(), nil); err != nil || string(msg) != "hi" {
		t.Fatalf("echo %q, %v", msg, err)
	}
	tb.end()
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("late")); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("write after the test ended: %v", err)
	}

	tb = &fakeTB{TB: t}
	if c := dialIn(tb, url+"/refused", nil); c != nil || !strings.Contains(tb.fatal, "dial "+url) {
		t.Fatalf("a refused handshake: Conn %v, failure %q", c, tb.fatal)
	}
	tb.end()
}
