package otel

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

// The attributes of the close, on the span's "websocket.close" event and on
// ecows.connections.closed.
const (
	closeCodeKey = attribute.Key("websocket.close.code")
	closeSideKey = attribute.Key("websocket.close.side")
)

// The attributes of a message span.
const (
	messageSizeKey = attribute.Key("websocket.message.size")
	messageWireKey = attribute.Key("websocket.message.wire_size")
)

// conn is the transport.Observer of one connection.
type conn struct {
	rec  *Recorder
	rt   *route
	span trace.Span
	ctx  context.Context // carries span
}

func (c *conn) Received(size, wire int64) { c.message(&c.rt.in, size, wire) }

func (c *conn) Sent(size, wire int64) { c.message(&c.rt.out, size, wire) }

func (c *conn) message(f *flow, size, wire int64) {
	r := c.rec
	r.messages.Add(c.ctx, 1, f.add...)
	r.bytes.Add(c.ctx, size, f.add...)
	r.wire.Add(c.ctx, wire, f.add...)
	r.size.Record(c.ctx, size, f.record...)
	if r.messageSpans {
		_, s := r.tracer.Start(c.ctx, f.spanName, f.spanOpts...)
		s.SetAttributes(messageSizeKey.Int64(size), messageWireKey.Int64(wire))
		s.End()
	}
}

// FlushReceived and FlushSent do nothing: the SDK's instruments take each message as it
// comes.
func (c *conn) FlushReceived() {}

func (c *conn) FlushSent() {}

func (c *conn) Pinged(rtt time.Duration) {
	c.rec.rtt.Record(c.ctx, rtt.Seconds(), c.rt.rtt...)
}

func (c *conn) Closed(code frame.CloseCode, by transport.Side) {
	r := c.rec
	r.open.Add(c.ctx, -1, c.rt.base...)
	r.closed.Add(c.ctx, 1, metric.WithAttributes(semconv.HTTPRoute(c.rt.name),
		closeCodeKey.String(metrics.CloseLabel(code, by)), closeSideKey.String(by.String())))
	c.span.AddEvent("websocket.close", trace.WithAttributes(
		closeCodeKey.Int(int(code)), closeSideKey.String(by.String())))
	if failure(code) {
		c.span.SetStatus(codes.Error, "closed with "+strconv.Itoa(int(code))+" "+code.String())
	}
	c.span.End()
}

// failure reports whether a connection that closed with code failed: a protocol or
// policy fault of either side, or an end without a close handshake. 1000, 1001 and 1005
// are ordinary ends, and the meaning of the codes from 1012 and from 3000 on is the
// application's.
func failure(code frame.CloseCode) bool {
	switch code {
	case frame.CloseProtocolError, frame.CloseUnsupportedData, frame.CloseAbnormal,
		frame.CloseInvalidPayload, frame.ClosePolicyViolation, frame.CloseMessageTooBig,
		frame.CloseMandatoryExtension, frame.CloseInternalError, frame.CloseTLSHandshake:
		return true
	}
	return false
}
