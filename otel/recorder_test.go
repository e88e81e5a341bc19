package otel

import (
	"errors"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

var errRefused = errors.New("instrument refused")

// refusingMeterProvider makes meters that refuse the instrument named refuse.
type refusingMeterProvider struct {
	noop.MeterProvider
	refuse string
}

func (p refusingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return refusingMeter{refuse: p.refuse}
}

type refusingMeter struct {
	noop.Meter
	refuse string
}

func (m refusingMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	if name == m.refuse {
		return noop.Int64Counter{}, errRefused
	}
	return noop.Int64Counter{}, nil
}

func (m refusingMeter) Int64ObservableGauge(name string, _ ...metric.Int64ObservableGaugeOption) (metric.Int64ObservableGauge, error) {
	if name == m.refuse {
		return noop.Int64ObservableGauge{}, errRefused
	}
	return noop.Int64ObservableGauge{}, nil
}

// TestNew checks that nil Options work (the global providers, which are no-ops here) and
// that New fails when the meter provider refuses an instrument, a hub's included.
func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		opts    *Options
		wantErr error
	}{
		{"nil", nil, nil},
		{"zero", &Options{}, nil},
		{"noop meter", &Options{MeterProvider: refusingMeterProvider{}}, nil},
		{"counter refused", &Options{MeterProvider: refusingMeterProvider{refuse: "ecows.messages"}}, errRefused},
		{"hub gauge refused", &Options{MeterProvider: refusingMeterProvider{refuse: "ecows.hub.broker.up"}}, errRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := New(tt.opts)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (rec != nil) {
				t.Fatalf("New: %v, %v; want error %v", rec, err, tt.wantErr)
			}
			if rec == nil {
				return
			}
			rec.Handshake("/r", 101, "")
			o := rec.Conn(upgradeRequest(""), "/r")
			o.Received(1, 1)
			o.Closed(frame.CloseNormal, transport.SidePeer)
			rec.Hub("h", func() metrics.HubStats { return metrics.HubStats{} })()
		})
	}
}

// TestPropagator checks that Options.Propagator replaces the default: one that does not read
// traceparent makes the span a root, though the header is there.
func TestPropagator(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	rec, err := New(&Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		MeterProvider:  noop.MeterProvider{},
		Propagator:     propagation.Baggage{},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.Conn(upgradeRequest("00-"+testTraceID+"-"+testSpanID+"-01"), "/r").Closed(frame.CloseNormal, transport.SidePeer)
	if s := spans.Ended()[0]; s.Parent().IsValid() {
		t.Errorf("parent %v, want none", s.Parent())
	}
}
