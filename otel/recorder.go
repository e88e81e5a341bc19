package otel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	gotel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

// scope names the instrumentation to the providers.
const scope = "github.com/ecows/ecows/otel"

// Options configures a Recorder. The zero value, like a nil *Options, uses the global
// providers and continues W3C trace context.
type Options struct {
	// TracerProvider makes the connections' spans; nil means the global one
	// (otel.GetTracerProvider), which may be set after New.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the instruments; nil means the global one (otel.GetMeterProvider),
	// which may be set after New.
	MeterProvider metric.MeterProvider
	// Propagator takes the trace to continue from the upgrade request's headers; nil means
	// propagation.TraceContext{} (the traceparent header), not the global propagator, which
	// ignores every header until one is set.
	Propagator propagation.TextMapPropagator
	// MessageSpans, when true, adds a short span per data message, a child of its
	// connection's span. Off, messages are counted and measured but make no span and
	// allocate nothing.
	MessageSpans bool
}

// Recorder is a metrics.Recorder that reports to OpenTelemetry: a span per connection and
// the measures of metrics.Registry as OpenTelemetry instruments (see the package
// documentation for their names). It is safe for concurrent use.
type Recorder struct {
	tracer       trace.Tracer
	prop         propagation.TextMapPropagator
	messageSpans bool
	meter        metric.Meter

	handshakes, opened, closed metric.Int64Counter
	open                       metric.Int64UpDownCounter
	messages, bytes, wire      metric.Int64Counter
	size                       metric.Int64Histogram
	rtt                        metric.Float64Histogram
	hub                        hubInstruments

	routes sync.Map // route name → *route
}

// The bounds of the histograms' buckets, as metrics.Registry has them (+Inf is implicit).
var sizeBounds, rttBounds = metrics.SizeBounds(), metrics.RTTBounds()

// New returns a Recorder that makes its spans and instruments with the providers opts names.
// It fails when the meter provider refuses an instrument.
func New(opts *Options) (*Recorder, error) {
	if opts == nil {
		opts = &Options{}
	}
	tp, mp, prop := opts.TracerProvider, opts.MeterProvider, opts.Propagator
	if tp == nil {
		tp = gotel.GetTracerProvider()
	}
	if mp == nil {
		mp = gotel.GetMeterProvider()
	}
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	r := &Recorder{
		tracer:       tp.Tracer(scope, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:         prop,
		messageSpans: opts.MessageSpans,
		meter:        mp.Meter(scope, metric.WithSchemaURL(semconv.SchemaURL)),
	}
	m := r.meter
	var errs [10]error
	r.handshakes, errs[0] = m.Int64Counter("ecows.handshakes", metric.WithUnit("{handshake}"),
		metric.WithDescription("WebSocket upgrade requests answered, by status (101, or 200 over HTTP/2, when accepted) and refusal reason (error.type)."))
	r.opened, errs[1] = m.Int64Counter("ecows.connections.opened", metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections accepted."))
	r.open, errs[2] = m.Int64UpDownCounter("ecows.connections.open", metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections open now."))
	r.closed, errs[3] = m.Int64Counter("ecows.connections.closed", metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections closed, by close code and by the side that sent the first close frame (none: no close frame)."))
	r.messages, errs[4] = m.Int64Counter("ecows.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Data messages received and sent."))
	r.bytes, errs[5] = m.Int64Counter("ecows.message.bytes", metric.WithUnit("By"),
		metric.WithDescription("Payload bytes of data messages, uncompressed."))
	r.wire, errs[6] = m.Int64Counter("ecows.message.wire_bytes", metric.WithUnit("By"),
		metric.WithDescription("Payload bytes of data messages as on the wire (compressed when compression applied; frame headers excluded)."))
	r.size, errs[7] = m.Int64Histogram("ecows.message.size", metric.WithUnit("By"),
		metric.WithDescription("Uncompressed size of data messages."),
		metric.WithExplicitBucketBoundaries(sizeBounds...))
	r.rtt, errs[8] = m.Float64Histogram("ecows.ping.rtt", metric.WithUnit("s"),
		metric.WithDescription("Round-trip times of pings answered."),
		metric.WithExplicitBucketBoundaries(rttBounds...))
	errs[9] = r.hub.init(m)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("otel: making instruments: %w", err)
	}
	return r, nil
}

// Handshake implements metrics.Recorder. A refusal's reason is the error.type attribute.
func (r *Recorder) Handshake(route string, status int, reason string) {
	attrs := []attribute.KeyValue{semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status)}
	if reason != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(reason))
	}
	r.handshakes.Add(context.Background(), 1, metric.WithAttributes(attrs...))
}

// Conn implements metrics.Recorder: it starts the connection's span, a server span named
// "WebSocket " and the route, whose parent is the span in req's context or else the one the
// propagator finds in req's headers, and returns the Observer that ends it.
func (r *Recorder) Conn(req *http.Request, route string) transport.Observer {
	rt := r.route(route)
	ctx := req.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = r.prop.Extract(ctx, propagation.HeaderCarrier(req.Header))
	}
	_, span := r.tracer.Start(ctx, rt.spanName, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(connAttributes(req, route)...))
	// Not the request's context, which the connection must not keep alive: a new one that
	// carries only the span, for the message spans and the measurements' exemplars.
	c := &conn{rec: r, rt: rt, span: span, ctx: trace.ContextWithSpan(context.Background(), span)}
	r.opened.Add(c.ctx, 1, rt.base...)
	r.open.Add(c.ctx, 1, rt.base...)
	return c
}

// connAttributes returns the attributes of the span of a connection upgraded from req.
func connAttributes(req *http.Request, route string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 6)
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	if host, port, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.NetworkPeerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.NetworkPeerPort(p))
		}
	} else if req.RemoteAddr != "" {
		attrs = append(attrs, semconv.NetworkPeerAddress(req.RemoteAddr))
	}
	if ua := req.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	scheme := "ws"
	if req.TLS != nil {
		scheme = "wss"
	}
	return append(attrs, semconv.URLScheme(scheme), semconv.NetworkProtocolName("websocket"))
}

// route holds what the measurements of one route's connections take, made once so that a
// message allocates nothing.
type route struct {
	name     string
	spanName string
	base     []metric.AddOption    // http.route
	rtt      []metric.RecordOption // http.route
	in, out  flow
}

// flow is one direction of a route's messages.
type flow struct {
	add      []metric.AddOption    // http.route, network.io.direction
	record   []metric.RecordOption // the same attributes
	spanName string
	spanOpts []trace.SpanStartOption
}

func newRoute(name string) *route {
	base := metric.WithAttributeSet(attribute.NewSet(semconv.HTTPRoute(name)))
	rt := &route{
		name:     name,
		spanName: spanName("WebSocket", name),
		base:     []metric.AddOption{base},
		rtt:      []metric.RecordOption{base},
	}
	rt.in = newFlow(name, semconv.NetworkIODirectionReceive, "WebSocket receive", trace.SpanKindConsumer)
	rt.out = newFlow(name, semconv.NetworkIODirectionTransmit, "WebSocket send", trace.SpanKindProducer)
	return rt
}

func newFlow(route string, dir attribute.KeyValue, name string, kind trace.SpanKind) flow {
	set := metric.WithAttributeSet(attribute.NewSet(semconv.HTTPRoute(route), dir))
	return flow{
		add:      []metric.AddOption{set},
		record:   []metric.RecordOption{set},
		spanName: spanName(name, route),
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(kind), trace.WithAttributes(dir)},
	}
}

// spanName returns prefix and route, or prefix alone for the empty route.
func spanName(prefix, route string) string {
	return strings.TrimSuffix(prefix+" "+route, " ")
}

// route returns the route named name, made on first use.
func (r *Recorder) route(name string) *route {
	if rt, ok := r.routes.Load(name); ok {
		return rt.(*route)
	}
	rt, _ := r.routes.LoadOrStore(name, newRoute(name))
	return rt.(*route)
}

var _ metrics.Recorder = (*Recorder)(nil)
