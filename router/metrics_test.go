package router

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

// TestMetricsRoute checks that what a route records is labelled with its chi pattern,
// mounted routes included, never with the raw path, and that refusals during Shutdown are
// recorded as 503 "shutdown".
func TestMetricsRoute(t *testing.T) {
	var g metrics.Registry
	ws := New()
	r := chi.NewRouter()
	echo := Text(func(ctx context.Context, c *transport.Conn, s string) error {
		_, err := c.WriteMessage(ctx, frame.OpText, []byte(s))
		return err
	})
	opts := &handshake.ServerOptions{Metrics: &g, Route: "unused under chi"}
	r.Route("/api", func(r chi.Router) { ws.Handle(r, "/rooms/{id}", echo, opts) })
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, path := range []string{"/api/rooms/1", "/api/rooms/2"} {
		c, _, err := handshake.Dial(context.Background(), wsURL(srv, path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := roundTrip(t, c, "hi"); got != "hi" {
			t.Fatalf("got %q", got)
		}
		c.Close(frame.CloseNormal, "")
	}
	ws.Shutdown(context.Background())
	resp, err := http.Get(srv.URL + "/api/rooms/3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d during shutdown", resp.StatusCode)
	}

	var b bytes.Buffer
	g.WriteText(&b)
	text := b.String()
	for _, line := range []string{
		`ecows_handshakes_total{reason="",route="/api/rooms/{id}",status="101"} 2`,
		`ecows_handshakes_total{reason="shutdown",route="/api/rooms/{id}",status="503"} 1`,
		`ecows_connections_opened_total{route="/api/rooms/{id}"} 2`,
		`ecows_messages_total{direction="in",route="/api/rooms/{id}"} 2`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("no %s in\n%s", line, text)
		}
	}
	if strings.Contains(text, "/api/rooms/1") || strings.Contains(text, "unused") {
		t.Errorf("a raw path or the fallback route in\n%s", text)
	}
}
