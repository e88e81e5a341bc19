package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

// A measured echo route. A server would serve the Registry at /metrics on a listener of its
// own: go http.ListenAndServe("127.0.0.1:9090", &m).
func Example() {
	var m metrics.Registry
	ws := router.New()
	r := chi.NewRouter()
	opts := &handshake.ServerOptions{Metrics: &m} // labelled with the route pattern
	ws.Handle(r, "/echo/{id}", router.Text(func(ctx context.Context, c *transport.Conn, s string) error {
		_, err := c.WriteMessage(ctx, frame.OpText, []byte(s))
		return err
	}), opts)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())

	c, _, err := handshake.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/echo/7", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(frame.CloseNormal, "")
	c.WriteMessage(context.Background(), frame.OpText, []byte("hello"))
	c.ReadMessage(context.Background(), nil)

	var text bytes.Buffer
	m.WriteText(&text)
	for sc := bufio.NewScanner(&text); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "ecows_handshakes_total") || strings.HasPrefix(sc.Text(), `ecows_message_bytes_total{direction="in"`) {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// ecows_handshakes_total{reason="",route="/echo/{id}",status="101"} 1
	// ecows_message_bytes_total{direction="in",route="/echo/{id}"} 5
}
