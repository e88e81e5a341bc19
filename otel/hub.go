package otel

import (
	"context"
	"errors"

	gotel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ecows/ecows/metrics"
)

// hubNameKey is the attribute that names a hub (its NodeID) on the hub instruments.
const hubNameKey = attribute.Key("ecows.hub.name")

// hubInstruments are the observable instruments of the hubs' Stats.
type hubInstruments struct {
	conns, rooms, queued                     metric.Int64ObservableUpDownCounter
	encoded, written, dropped, evicted       metric.Int64ObservableCounter
	published, publishErrors, received, gaps metric.Int64ObservableCounter
	up                                       metric.Int64ObservableGauge
	all                                      []metric.Observable
}

func (h *hubInstruments) init(m metric.Meter) error {
	var errs [12]error
	upDown := func(i int, name, unit, desc string) metric.Int64ObservableUpDownCounter {
		var in metric.Int64ObservableUpDownCounter
		in, errs[i] = m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		h.all = append(h.all, in)
		return in
	}
	counter := func(i int, name, unit, desc string) metric.Int64ObservableCounter {
		var in metric.Int64ObservableCounter
		in, errs[i] = m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		h.all = append(h.all, in)
		return in
	}
	h.conns = upDown(0, "ecows.hub.connections", "{connection}", "Connections a hub knows, now.")
	h.rooms = upDown(1, "ecows.hub.rooms", "{room}", "Rooms with at least one local member, now.")
	h.queued = upDown(2, "ecows.hub.queued_messages", "{message}", "Messages waiting in connections' send queues, now.")
	h.encoded = counter(3, "ecows.hub.encoded", "{frame}", "Frames a hub encoded: one per broadcast, send or envelope received.")
	h.written = counter(4, "ecows.hub.written", "{frame}", "Frames a hub wrote to connections.")
	h.dropped = counter(5, "ecows.hub.dropped", "{frame}", "Frames dropped for slow connections (SlowDrop).")
	h.evicted = counter(6, "ecows.hub.evicted", "{connection}", "Connections closed with 1008 for being too slow.")
	h.published = counter(7, "ecows.hub.published", "{envelope}", "Envelopes the broker took.")
	h.publishErrors = counter(8, "ecows.hub.publish_errors", "{envelope}", "Envelopes the broker refused.")
	h.received = counter(9, "ecows.hub.received", "{envelope}", "Envelopes from other nodes delivered here.")
	h.gaps = counter(10, "ecows.hub.gaps", "{gap}", "Gaps in what this node received from the others.")
	// No unit: "1" would make the Prometheus exporter add _ratio to the name.
	h.up, errs[11] = m.Int64ObservableGauge("ecows.hub.broker.up",
		metric.WithDescription("1 while the broker's link to its engine is up."))
	h.all = append(h.all, h.up)
	return errors.Join(errs[:]...)
}

// Hub implements metrics.Recorder: it registers a callback that samples stats whenever the
// meter provider collects; remove unregisters it. An error of the provider's goes to the
// global OpenTelemetry error handler (otel.Handle), as Hub cannot return one.
func (r *Recorder) Hub(name string, stats func() metrics.HubStats) (remove func()) {
	h := &r.hub
	set := metric.WithAttributeSet(attribute.NewSet(hubNameKey.String(name)))
	reg, err := r.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		up := int64(0)
		if s.LinkUp {
			up = 1
		}
		o.ObserveInt64(h.conns, int64(s.Conns), set)
		o.ObserveInt64(h.rooms, int64(s.Rooms), set)
		o.ObserveInt64(h.queued, int64(s.Queued), set)
		o.ObserveInt64(h.encoded, int64(s.Encoded), set)
		o.ObserveInt64(h.written, int64(s.Written), set)
		o.ObserveInt64(h.dropped, int64(s.Dropped), set)
		o.ObserveInt64(h.evicted, int64(s.Evicted), set)
		o.ObserveInt64(h.published, int64(s.Published), set)
		o.ObserveInt64(h.publishErrors, int64(s.PublishErrors), set)
		o.ObserveInt64(h.received, int64(s.Received), set)
		o.ObserveInt64(h.gaps, int64(s.Gaps), set)
		o.ObserveInt64(h.up, up, set)
		return nil
	}, h.all...)
	if err != nil {
		gotel.Handle(err)
		return func() {}
	}
	return func() {
		if err := reg.Unregister(); err != nil {
			gotel.Handle(err)
		}
	}
}
