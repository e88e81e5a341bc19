package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	_ "github.com/ecows/ecows/internal/xconnect" // GODEBUG=http2xconnect=1 for this test binary
	"github.com/ecows/ecows/transport"
)

// One route serves HTTP/1.1 and HTTP/2 clients alike: the HTTP/2 socket is a CONNECT stream
// that stays open while its connection is served (the handler returning would end it), it
// keeps the route's URL parameters, and Shutdown closes it with 1001 as it does the others.
func TestHandleOverHTTP2(t *testing.T) {
	wstest.CheckGoroutines(t)
	ws := New()
	r := chi.NewRouter()
	protos := make(chan bool, 2)
	ws.Handle(r, "/rooms/{id}", Text(func(ctx context.Context, c *transport.Conn, s string) error {
		protos <- c.HTTP2()
		_, err := c.WriteMessage(ctx, frame.OpText, []byte(chi.URLParamFromCtx(ctx, "id")+": "+s))
		return err
	}), nil)
	srv := httptest.NewUnstartedServer(r)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true) // h2c: HTTP/2 without TLS
	srv.Start()
	defer srv.Close()
	defer handshake.CloseIdleConnections()

	var conns []*transport.Conn
	for _, mode := range []handshake.HTTP2Mode{handshake.HTTP2Off, handshake.HTTP2Require} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := handshake.Dial(ctx, wsURL(srv, "/rooms/go"), &handshake.DialOptions{HTTP2: mode})
		cancel()
		if err != nil {
			t.Fatalf("HTTP2 mode %v: %v", mode, err)
		}
		defer c.CloseNow()
		if got := roundTrip(t, c, "hi"); got != "go: hi" {
			t.Fatalf("HTTP2 mode %v: got %q", mode, got)
		}
		if over := <-protos; over != (mode == handshake.HTTP2Require) || c.HTTP2() != over {
			t.Fatalf("HTTP2 mode %v: server's Conn over HTTP/2 %v, client's %v", mode, over, c.HTTP2())
		}
		conns = append(conns, c)
	}

	// The clients read on, so that they answer the close handshake Shutdown starts.
	ends := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _, err := c.ReadMessage(ctx, nil)
			ends <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range conns {
		if err := <-ends; transport.CloseStatus(err) != frame.CloseGoingAway {
			t.Errorf("a connection ended with %v, want 1001", err)
		}
	}
}
