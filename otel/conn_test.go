package otel

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

const (
	testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	testSpanID  = "00f067aa0ba902b7"
)

// upgradeRequest returns a request as Upgrade gets it, with a traceparent header when
// traceparent is set.
func upgradeRequest(traceparent string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/chat/go", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "test-agent/1")
	if traceparent != "" {
		r.Header.Set("Traceparent", traceparent)
	}
	return r
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]any {
	m := make(map[attribute.Key]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.AsInterface()
	}
	return m
}

// TestConnParent checks where a connection's span gets its parent: the span in the request's
// context first, else the traceparent header (with the default propagator, though the global
// one ignores it), else none.
func TestConnParent(t *testing.T) {
	header := "00-" + testTraceID + "-" + testSpanID + "-01"
	local := sdktrace.NewTracerProvider() // an HTTP middleware's span, in the request's context
	ctxSpan, inCtx := local.Tracer("http").Start(context.Background(), "GET /chat/{room}")
	defer inCtx.End()
	tests := []struct {
		name        string
		ctx         context.Context
		traceparent string
		wantParent  trace.SpanContext // invalid: a root span
		wantRemote  bool
	}{
		{"header", context.Background(), header, spanContext(t, testTraceID, testSpanID), true},
		{"context over header", ctxSpan, header, inCtx.SpanContext(), false},
		{"context", ctxSpan, "", inCtx.SpanContext(), false},
		{"none", context.Background(), "", trace.SpanContext{}, false},
		{"malformed header", context.Background(), "00-xyz-01", trace.SpanContext{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, spans, _ := testRecorder(t, false)
			req := upgradeRequest(tt.traceparent).WithContext(tt.ctx)
			rec.Conn(req, "/chat/{room}").Closed(frame.CloseNormal, transport.SidePeer)
			ended := spans.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans, want 1", len(ended))
			}
			s := ended[0]
			if !tt.wantParent.IsValid() {
				if s.Parent().IsValid() {
					t.Errorf("parent %v, want none", s.Parent())
				}
				return
			}
			if !s.Parent().Equal(tt.wantParent.WithRemote(tt.wantRemote)) {
				t.Errorf("parent %v, want %v", s.Parent(), tt.wantParent)
			}
			if s.SpanContext().TraceID() != tt.wantParent.TraceID() {
				t.Errorf("trace %v, want %v", s.SpanContext().TraceID(), tt.wantParent.TraceID())
			}
		})
	}
}

func spanContext(t testing.TB, traceID, spanID string) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex(spanID)
	if err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
}

// TestConnSpan checks the span of a connection: name, kind, attributes, the close event, and
// the status each kind of close gives it.
func TestConnSpan(t *testing.T) {
	tests := []struct {
		route     string
		tls       bool
		code      frame.CloseCode
		by        transport.Side
		wantName  string
		wantError bool
	}{
		{"/chat/{room}", false, frame.CloseNormal, transport.SidePeer, "WebSocket /chat/{room}", false},
		{"/chat/{room}", true, frame.CloseGoingAway, transport.SideLocal, "WebSocket /chat/{room}", false},
		{"/x", false, frame.CloseNoStatus, transport.SidePeer, "WebSocket /x", false},
		{"/x", false, 4000, transport.SidePeer, "WebSocket /x", false},
		{"/x", false, 3001, transport.SideLocal, "WebSocket /x", false},
		{"/x", false, frame.CloseServiceRestart, transport.SideLocal, "WebSocket /x", false},
		{"", false, frame.CloseAbnormal, transport.SideNone, "WebSocket", true},
		{"/x", false, frame.CloseProtocolError, transport.SideLocal, "WebSocket /x", true},
		{"/x", false, frame.CloseUnsupportedData, transport.SideLocal, "WebSocket /x", true},
		{"/x", false, frame.CloseInvalidPayload, transport.SidePeer, "WebSocket /x", true},
		{"/x", false, frame.ClosePolicyViolation, transport.SideLocal, "WebSocket /x", true},
		{"/x", false, frame.CloseMessageTooBig, transport.SideLocal, "WebSocket /x", true},
		{"/x", false, frame.CloseMandatoryExtension, transport.SidePeer, "WebSocket /x", true},
		{"/x", false, frame.CloseInternalError, transport.SidePeer, "WebSocket /x", true},
		{"/x", false, frame.CloseTLSHandshake, transport.SideNone, "WebSocket /x", true},
	}
	for _, tt := range tests {
		t.Run(tt.wantName+" "+tt.code.String(), func(t *testing.T) {
			rec, spans, _ := testRecorder(t, false)
			req := upgradeRequest("")
			if tt.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec.Conn(req, tt.route).Closed(tt.code, tt.by)
			s := spans.Ended()[0]
			if s.Name() != tt.wantName || s.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q, kind %v; want %q, server", s.Name(), s.SpanKind(), tt.wantName)
			}
			scheme := "ws"
			if tt.tls {
				scheme = "wss"
			}
			want := map[attribute.Key]any{
				"network.peer.address":  "127.0.0.1",
				"network.peer.port":     int64(40000),
				"user_agent.original":   "test-agent/1",
				"url.scheme":            scheme,
				"network.protocol.name": "websocket",
			}
			if tt.route != "" {
				want["http.route"] = tt.route
			}
			if got := attrMap(s.Attributes()); !mapsEqual(got, want) {
				t.Errorf("attributes %v, want %v", got, want)
			}
			ev := s.Events()
			if len(ev) != 1 || ev[0].Name != "websocket.close" {
				t.Fatalf("events %v, want one websocket.close", ev)
			}
			wantEv := map[attribute.Key]any{"websocket.close.code": int64(tt.code), "websocket.close.side": tt.by.String()}
			if got := attrMap(ev[0].Attributes); !mapsEqual(got, wantEv) {
				t.Errorf("close event %v, want %v", got, wantEv)
			}
			if got := s.Status().Code == codes.Error; got != tt.wantError {
				t.Errorf("status %v, want error %v", s.Status(), tt.wantError)
			}
		})
	}
}

func mapsEqual(a, b map[attribute.Key]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestObserverMetrics checks what one connection's Observer records, each size in its own
// instrument, and that its close counts as Registry's does.
func TestObserverMetrics(t *testing.T) {
	rec, _, reader := testRecorder(t, false)
	for _, c := range []struct {
		code frame.CloseCode
		by   transport.Side
	}{{4321, transport.SidePeer}, {4321, transport.SideLocal}, {frame.CloseAbnormal, transport.SideNone}} {
		o := rec.Conn(upgradeRequest(""), "/r")
		o.Received(100, 40)
		o.Sent(7, 7)
		o.Pinged(3 * time.Millisecond)
		o.Closed(c.code, c.by)
	}
	rec.Handshake("/r", 403, "origin")
	rec.Handshake("/r", 101, "")
	got := collect(t, reader)
	want := samples{
		`ecows_handshakes_total{reason="",route="/r",status="101"}`:           1,
		`ecows_handshakes_total{reason="origin",route="/r",status="403"}`:     1,
		`ecows_connections_opened_total{route="/r"}`:                          3,
		`ecows_connections_open{route="/r"}`:                                  0,
		`ecows_connections_closed_total{code="4xxx",route="/r",side="peer"}`:  1,
		`ecows_connections_closed_total{code="4321",route="/r",side="local"}`: 1,
		`ecows_connections_closed_total{code="1006",route="/r",side="none"}`:  1,
		`ecows_messages_total{direction="in",route="/r"}`:                     3,
		`ecows_messages_total{direction="out",route="/r"}`:                    3,
		`ecows_message_bytes_total{direction="in",route="/r"}`:                300,
		`ecows_message_bytes_total{direction="out",route="/r"}`:               21,
		`ecows_message_wire_bytes_total{direction="in",route="/r"}`:           120,
		`ecows_message_wire_bytes_total{direction="out",route="/r"}`:          21,
		`ecows_message_size_bytes_count{direction="in",route="/r"}`:           3,
		`ecows_message_size_bytes_sum{direction="in",route="/r"}`:             300,
		`ecows_message_size_bytes_count{direction="out",route="/r"}`:          3,
		`ecows_message_size_bytes_sum{direction="out",route="/r"}`:            21,
		`ecows_ping_rtt_seconds_count{route="/r"}`:                            3,
		`ecows_ping_rtt_seconds_sum{route="/r"}`:                              0.009,
		`ecows_message_size_bytes_bucket{direction="in",le="64",route="/r"}`:  0,
		`ecows_message_size_bytes_bucket{direction="in",le="256",route="/r"}`: 3,
		`ecows_message_size_bytes_bucket{direction="out",le="16",route="/r"}`: 3,
		`ecows_ping_rtt_seconds_bucket{le="0.0025",route="/r"}`:               0,
		`ecows_ping_rtt_seconds_bucket{le="0.005",route="/r"}`:                3,
	}
	got.check(t, want)
}

// TestBucketsAsRegistry checks that the histograms' bounds are Registry's.
func TestBucketsAsRegistry(t *testing.T) {
	var reg metrics.Registry
	o := reg.Conn(upgradeRequest(""), "/r")
	o.Received(1, 1)
	o.Pinged(time.Millisecond)
	bounds := map[string][]float64{}
	for _, f := range reg.Gather() {
		if f.Type == metrics.Histogram && len(f.Metrics) > 0 {
			for _, b := range f.Metrics[0].Buckets {
				bounds[f.Name] = append(bounds[f.Name], b.UpperBound)
			}
		}
	}
	for name, ours := range map[string][]float64{"ecows_message_size_bytes": sizeBounds, "ecows_ping_rtt_seconds": rttBounds} {
		theirs := bounds[name]
		if len(theirs) == 0 || !slices.Equal(ours, theirs[:len(theirs)-1]) {
			t.Errorf("%s: bounds %v, Registry's %v (+Inf last)", name, ours, theirs)
		}
	}
}

// TestMessageSpans checks that MessageSpans makes a span per data message, a child of the
// connection's span, and that without it there is none.
func TestMessageSpans(t *testing.T) {
	for _, on := range []bool{false, true} {
		rec, spans, _ := testRecorder(t, on)
		o := rec.Conn(upgradeRequest("00-"+testTraceID+"-"+testSpanID+"-01"), "/r")
		o.Received(100, 40)
		o.Sent(7, 7)
		o.Closed(frame.CloseNormal, transport.SidePeer)
		ended := spans.Ended()
		if !on {
			if len(ended) != 1 {
				t.Errorf("MessageSpans false: %d spans, want 1", len(ended))
			}
			continue
		}
		if len(ended) != 3 {
			t.Fatalf("MessageSpans true: %d spans, want 3", len(ended))
		}
		connSpan := ended[2].SpanContext()
		want := []struct {
			name       string
			kind       trace.SpanKind
			dir        string
			size, wire int64
		}{
			{"WebSocket receive /r", trace.SpanKindConsumer, "receive", 100, 40},
			{"WebSocket send /r", trace.SpanKindProducer, "transmit", 7, 7},
		}
		for i, w := range want {
			s := ended[i]
			if s.Name() != w.name || s.SpanKind() != w.kind {
				t.Errorf("span %d: %q %v, want %q %v", i, s.Name(), s.SpanKind(), w.name, w.kind)
			}
			if s.Parent().SpanID() != connSpan.SpanID() || s.SpanContext().TraceID() != connSpan.TraceID() {
				t.Errorf("span %d: parent %v, want the connection's %v", i, s.Parent(), connSpan)
			}
			wantAttrs := map[attribute.Key]any{"network.io.direction": w.dir,
				"websocket.message.size": w.size, "websocket.message.wire_size": w.wire}
			if got := attrMap(s.Attributes()); !mapsEqual(got, wantAttrs) {
				t.Errorf("span %d: attributes %v, want %v", i, got, wantAttrs)
			}
		}
	}
}

// TestObserverAllocs checks that counting a message, or a ping, allocates nothing when
// MessageSpans is off, with a recording span and the SDK's instruments behind it.
func TestObserverAllocs(t *testing.T) {
	rec, _, _ := testRecorder(t, false)
	o := rec.Conn(upgradeRequest("00-"+testTraceID+"-"+testSpanID+"-01"), "/r")
	defer o.Closed(frame.CloseNormal, transport.SideLocal)
	o.Received(10, 10) // the SDK makes each attribute set's aggregation on first use
	o.Sent(10, 10)
	o.Pinged(time.Millisecond)
	if n := testing.AllocsPerRun(100, func() {
		o.Received(300, 120)
		o.Sent(5000, 5000)
		o.Pinged(2 * time.Millisecond)
	}); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}

// TestHubRemove checks that a hub's instruments are observed while it is registered and
// stop when it is removed, while another hub's go on.
func TestHubRemove(t *testing.T) {
	rec, _, reader := testRecorder(t, false)
	removeA := rec.Hub("a", func() metrics.HubStats { return metrics.HubStats{Conns: 2, Written: 5, LinkUp: true} })
	removeB := rec.Hub("b", func() metrics.HubStats { return metrics.HubStats{Conns: 1, Dropped: 3} })
	defer removeB()
	got := collect(t, reader)
	got.check(t, samples{
		`ecows_hub_connections{hub="a"}`:   2,
		`ecows_hub_written_total{hub="a"}`: 5,
		`ecows_hub_broker_up{hub="a"}`:     1,
		`ecows_hub_connections{hub="b"}`:   1,
		`ecows_hub_dropped_total{hub="b"}`: 3,
		`ecows_hub_broker_up{hub="b"}`:     0,
		`ecows_hub_gaps_total{hub="b"}`:    0,
	})
	if len(got) != 24 {
		t.Errorf("%d samples, want 12 per hub: %v", len(got), got)
	}
	removeA()
	got = collect(t, reader)
	if len(got) != 12 || got[`ecows_hub_connections{hub="b"}`] != 1 {
		t.Errorf("after removing a: %v, want hub b's 12 samples", got)
	}
}
