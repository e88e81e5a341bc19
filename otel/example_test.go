package otel_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/otel"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

// A chi route whose connections are traced, continuing the trace of the client's traceparent
// header, and counted by a Registry too. Without Options, the Recorder uses the global
// providers that an application sets up with its exporters.
func Example() {
	spans := tracetest.NewSpanRecorder()
	rec, err := otel.New(&otel.Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var reg metrics.Registry // served at /metrics, for Prometheus
	ws := router.New()
	r := chi.NewRouter()
	r.Handle("/metrics", &reg)
	ws.Handle(r, "/chat/{room}", router.Text(func(ctx context.Context, c *transport.Conn, s string) error {
		_, err := c.WriteMessage(ctx, frame.OpText, []byte(s))
		return err
	}), &handshake.ServerOptions{Metrics: metrics.Multi(&reg, rec)})
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())

	ctx := context.Background()
	c, _, err := handshake.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/chat/go", &handshake.DialOptions{
		Header: http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	c.WriteMessage(ctx, frame.OpText, []byte("hi"))
	c.ReadMessage(ctx, nil)
	c.Close(frame.CloseNormal, "")
	for i := 0; len(spans.Ended()) == 0 && i < 10000; i++ {
		time.Sleep(time.Millisecond) // the server's end of the close
	}

	s := spans.Ended()[0]
	fmt.Println(s.Name(), s.SpanKind())
	fmt.Println("trace", s.SpanContext().TraceID(), "parent", s.Parent().SpanID())
	for _, ev := range s.Events() {
		fmt.Print(ev.Name)
		for _, a := range ev.Attributes {
			fmt.Print(" ", a.Key, "=", a.Value.String())
		}
		fmt.Println()
	}
	// Output:
	// WebSocket /chat/{room} server
	// trace 4bf92f3577b34da6a3ce929d0e0e4736 parent 00f067aa0ba902b7
	// websocket.close websocket.close.code=1000 websocket.close.side=peer
}
