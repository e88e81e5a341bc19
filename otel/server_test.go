package otel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

// echoRoute is the route of TestServer's server.
const echoRoute = "/echo/{room}"

// echoServer serves echoRoute: every message back, except "ping" (the server pings the client,
// then sends "pinged") and "close" (the server closes with 1008). Its connections join the
// room in the URL on h.
func echoServer(t *testing.T, rec metrics.Recorder, h *hub.Hub) (*router.Router, *httptest.Server) {
	ws := router.New()
	ws.CloseOnShutdown(h)
	r := chi.NewRouter()
	ws.Handle(r, echoRoute, middleware.Messages(middleware.Bytes, middleware.HandlerFunc(
		func(ctx context.Context, c *transport.Conn, msg []byte) error {
			switch string(msg) {
			case "ping":
				// Ping waits for the pong, which this loop reads once the handler returns.
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if _, err := c.Ping(ctx); err != nil {
						t.Errorf("server ping: %v", err)
					}
					c.WriteMessage(ctx, frame.OpText, []byte("pinged"))
				}()
				return nil
			case "close":
				return &transport.CloseError{Code: frame.ClosePolicyViolation, Reason: "asked to"}
			}
			_, err := c.WriteMessage(ctx, frame.OpBinary, msg)
			return err
		}), router.Rooms(h, router.URLParam("room"))), &handshake.ServerOptions{Metrics: rec})
	return ws, httptest.NewServer(r)
}

// TestServer runs a known pattern of connections through a real server whose Recorder is
// metrics.Multi of a Registry and an OpenTelemetry Recorder: 4 connections with their own
// traceparent, 3 messages each way on each, a broadcast, a ping, 2 refused handshakes, and
// closes with 1000 and 4001 by the client, 1008 by the server and none (the client vanishes).
// It checks each connection's span (parent from the traceparent, attributes, close event and
// status), every count exactly, and that the OpenTelemetry measures equal the Registry's.
func TestServer(t *testing.T) {
	before := runtime.NumGoroutine()
	rec, spans, reader := testRecorder(t, false)
	var reg metrics.Registry
	m := metrics.Multi(&reg, rec)
	h, err := hub.New(&hub.Options{NodeID: "node1", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ws, srv := echoServer(t, m, h)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/echo/lobby"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The connections, each with a trace of its own.
	type client struct {
		c       *transport.Conn
		traceID trace.TraceID
		spanID  trace.SpanID
	}
	sizes := []int{5, 300, 70000} // one in each of three size buckets; the last in two frames
	clients := make([]client, 4)
	for i := range clients {
		cl := &clients[i]
		sc := spanContext(t, fmt.Sprintf("%032x", 0xa0+i), fmt.Sprintf("%016x", 0xb0+i))
		cl.traceID, cl.spanID = sc.TraceID(), sc.SpanID()
		header := http.Header{
			"Traceparent": {"00-" + cl.traceID.String() + "-" + cl.spanID.String() + "-01"},
			"User-Agent":  {"otel-test"},
		}
		if cl.c, _, err = handshake.Dial(ctx, url, &handshake.DialOptions{Header: header}); err != nil {
			t.Fatal(err)
		}
		defer cl.c.CloseNow()
		for _, n := range sizes {
			msg := bytes.Repeat([]byte{byte('a' + i)}, n)
			if _, err := cl.c.WriteMessage(ctx, frame.OpBinary, msg); err != nil {
				t.Fatal(err)
			}
			if _, got, err := cl.c.ReadMessage(ctx, nil); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("client %d: echo of %d bytes: %d bytes, %v", i, n, len(got), err)
			}
		}
	}
	// Each client's echoes came after its Open hook, so all have joined the room.
	if err := h.BroadcastText("lobby", "hello"); err != nil {
		t.Fatal(err)
	}
	for i, cl := range clients {
		if _, got, err := cl.c.ReadMessage(ctx, nil); err != nil || string(got) != "hello" {
			t.Fatalf("client %d: broadcast: %q, %v", i, got, err)
		}
	}
	if _, err := clients[0].c.WriteMessage(ctx, frame.OpText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := clients[0].c.ReadMessage(ctx, nil); err != nil || string(got) != "pinged" {
		t.Fatalf("after the ping: %q, %v", got, err)
	}
	for range 2 {
		_, _, err := handshake.Dial(ctx, url, &handshake.DialOptions{Origin: "http://evil.example"})
		if se := (*handshake.StatusError)(nil); !errors.As(err, &se) || se.Response.StatusCode != http.StatusForbidden {
			t.Fatalf("dial from another origin: %v, want a 403 StatusError", err)
		}
	}

	// With every connection open: the hub's instruments and the open count. A message is
	// counted as sent, by the Conn and by the hub, once written, so its reader may have it
	// first; Multi passes it to the Registry before the Recorder.
	waitFor(t, "the server to count what it wrote", func() bool {
		s := collect(t, reader)
		return s[`ecows_messages_total{direction="out",route="/echo/{room}"}`] == 4*3+4+1 &&
			s[`ecows_hub_written_total{hub="node1"}`] == 4
	})
	mid := collect(t, reader)
	if d := mid.diff(gather(&reg)); len(d) > 0 {
		t.Errorf("with the connections open, OpenTelemetry and Registry differ:\n%s", strings.Join(d, "\n"))
	}
	mid.check(t, samples{
		`ecows_connections_open{route="/echo/{room}"}`: 4,
		`ecows_hub_connections{hub="node1"}`:           4,
		`ecows_hub_rooms{hub="node1"}`:                 1,
		`ecows_hub_encoded_total{hub="node1"}`:         1,
		`ecows_hub_written_total{hub="node1"}`:         4,
		`ecows_hub_queued_messages{hub="node1"}`:       0,
	})

	// The closes.
	if err := clients[0].c.Close(frame.CloseNormal, ""); err != nil {
		t.Errorf("close 1000: %v", err)
	}
	if err := clients[1].c.Close(4001, "done"); err != nil {
		t.Errorf("close 4001: %v", err)
	}
	if _, err := clients[2].c.WriteMessage(ctx, frame.OpText, []byte("close")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := clients[2].c.ReadMessage(ctx, nil); transport.CloseStatus(err) != frame.ClosePolicyViolation {
		t.Errorf("after asking for a close: %v, want 1008", err)
	}
	clients[3].c.CloseNow()
	waitFor(t, "4 ended spans", func() bool { return len(spans.Ended()) == 4 })

	// The spans.
	wantClose := []struct {
		code  frame.CloseCode
		side  string
		error bool
	}{
		{frame.CloseNormal, "peer", false},
		{4001, "peer", false},
		{frame.ClosePolicyViolation, "local", true},
		{frame.CloseAbnormal, "none", true},
	}
	for _, s := range spans.Ended() {
		i := clientOf(t, s, func(i int) trace.TraceID { return clients[i].traceID }, len(clients))
		if i < 0 {
			continue
		}
		if p := s.Parent(); p.TraceID() != clients[i].traceID || p.SpanID() != clients[i].spanID || !p.IsRemote() {
			t.Errorf("client %d: parent %v, want the remote span %v", i, p, clients[i].spanID)
		}
		if s.Name() != "WebSocket /echo/{room}" || s.SpanKind() != trace.SpanKindServer {
			t.Errorf("client %d: span %q %v", i, s.Name(), s.SpanKind())
		}
		attrs := attrMap(s.Attributes())
		for k, v := range map[attribute.Key]any{
			"http.route": echoRoute, "network.peer.address": "127.0.0.1", "url.scheme": "ws",
			"user_agent.original": "otel-test", "network.protocol.name": "websocket",
		} {
			if attrs[k] != v {
				t.Errorf("client %d: %s = %v, want %v", i, k, attrs[k], v)
			}
		}
		w := wantClose[i]
		ev := s.Events()
		if len(ev) != 1 || ev[0].Name != "websocket.close" {
			t.Errorf("client %d: events %v, want one websocket.close", i, ev)
		} else if got, want := attrMap(ev[0].Attributes), (map[attribute.Key]any{
			"websocket.close.code": int64(w.code), "websocket.close.side": w.side,
		}); !mapsEqual(got, want) {
			t.Errorf("client %d: close event %v, want %v", i, got, want)
		}
		if got := s.Status().Code == codes.Error; got != w.error {
			t.Errorf("client %d: status %v, want error %v", i, s.Status(), w.error)
		}
	}

	// The counts, once the router and its hub have shut down.
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	end := collect(t, reader)
	if d := end.diff(gather(&reg)); len(d) > 0 {
		t.Errorf("at the end, OpenTelemetry and Registry differ:\n%s", strings.Join(d, "\n"))
	}
	in := 4*(5+300+70000) + len("ping") + len("close")
	out := 4*(5+300+70000) + 4*len("hello") + len("pinged")
	want := samples{
		`ecows_handshakes_total{reason="",route="/echo/{room}",status="101"}`:              4,
		`ecows_handshakes_total{reason="origin",route="/echo/{room}",status="403"}`:        2,
		`ecows_connections_opened_total{route="/echo/{room}"}`:                             4,
		`ecows_connections_open{route="/echo/{room}"}`:                                     0,
		`ecows_connections_closed_total{code="1000",route="/echo/{room}",side="peer"}`:     1,
		`ecows_connections_closed_total{code="4xxx",route="/echo/{room}",side="peer"}`:     1,
		`ecows_connections_closed_total{code="1008",route="/echo/{room}",side="local"}`:    1,
		`ecows_connections_closed_total{code="1006",route="/echo/{room}",side="none"}`:     1,
		`ecows_messages_total{direction="in",route="/echo/{room}"}`:                        4*3 + 2,
		`ecows_messages_total{direction="out",route="/echo/{room}"}`:                       4*3 + 4 + 1,
		`ecows_message_bytes_total{direction="in",route="/echo/{room}"}`:                   float64(in),
		`ecows_message_bytes_total{direction="out",route="/echo/{room}"}`:                  float64(out),
		`ecows_message_wire_bytes_total{direction="in",route="/echo/{room}"}`:              float64(in),
		`ecows_message_wire_bytes_total{direction="out",route="/echo/{room}"}`:             float64(out),
		`ecows_message_size_bytes_bucket{direction="in",le="16",route="/echo/{room}"}`:     4 + 2,
		`ecows_message_size_bytes_bucket{direction="in",le="1024",route="/echo/{room}"}`:   4 + 2 + 4,
		`ecows_message_size_bytes_bucket{direction="in",le="65536",route="/echo/{room}"}`:  4 + 2 + 4,
		`ecows_message_size_bytes_bucket{direction="in",le="262144",route="/echo/{room}"}`: 4 + 2 + 4 + 4,
		`ecows_message_size_bytes_count{direction="out",route="/echo/{room}"}`:             4*3 + 4 + 1,
		`ecows_ping_rtt_seconds_count{route="/echo/{room}"}`:                               1,
	}
	end.check(t, want)
	for k := range end {
		if strings.HasPrefix(k, "ecows_hub_") {
			t.Errorf("%s after the hub closed", k)
		}
	}

	for _, cl := range clients {
		cl.c.CloseNow()
	}
	waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// clientOf returns the index of the client whose trace s is in, or -1 after reporting it.
func clientOf(t *testing.T, s sdktrace.ReadOnlySpan, traceID func(int) trace.TraceID, n int) int {
	t.Helper()
	for i := range n {
		if s.SpanContext().TraceID() == traceID(i) {
			return i
		}
	}
	t.Errorf("span %q in trace %v, of no client", s.Name(), s.SpanContext().TraceID())
	return -1
}

// waitFor waits, within a generous bound, until done reports true.
func waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !done(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
