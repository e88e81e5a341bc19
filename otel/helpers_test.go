package otel

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ecows/ecows/metrics"
)

// testRecorder returns a Recorder whose spans go to a SpanRecorder and whose instruments are
// read by a ManualReader.
func testRecorder(t testing.TB, messageSpans bool) (*Recorder, *tracetest.SpanRecorder, *sdkmetric.ManualReader) {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	rec, err := New(&Options{
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		MessageSpans:   messageSpans,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec, spans, reader
}

// promNames maps each instrument to the Prometheus name metrics.Registry gives its measure,
// as the package documentation does.
var promNames = map[string]string{
	"ecows.handshakes":          "ecows_handshakes_total",
	"ecows.connections.opened":  "ecows_connections_opened_total",
	"ecows.connections.open":    "ecows_connections_open",
	"ecows.connections.closed":  "ecows_connections_closed_total",
	"ecows.messages":            "ecows_messages_total",
	"ecows.message.bytes":       "ecows_message_bytes_total",
	"ecows.message.wire_bytes":  "ecows_message_wire_bytes_total",
	"ecows.message.size":        "ecows_message_size_bytes",
	"ecows.ping.rtt":            "ecows_ping_rtt_seconds",
	"ecows.hub.connections":     "ecows_hub_connections",
	"ecows.hub.rooms":           "ecows_hub_rooms",
	"ecows.hub.queued_messages": "ecows_hub_queued_messages",
	"ecows.hub.encoded":         "ecows_hub_encoded_total",
	"ecows.hub.written":         "ecows_hub_written_total",
	"ecows.hub.dropped":         "ecows_hub_dropped_total",
	"ecows.hub.evicted":         "ecows_hub_evicted_total",
	"ecows.hub.published":       "ecows_hub_published_total",
	"ecows.hub.publish_errors":  "ecows_hub_publish_errors_total",
	"ecows.hub.received":        "ecows_hub_received_total",
	"ecows.hub.gaps":            "ecows_hub_gaps_total",
	"ecows.hub.broker.up":       "ecows_hub_broker_up",
}

// promLabels maps each attribute to the Registry label it stands for.
var promLabels = map[attribute.Key]string{
	"http.route":                "route",
	"http.response.status_code": "status",
	"error.type":                "reason",
	"websocket.close.code":      "code",
	"websocket.close.side":      "side",
	"network.io.direction":      "direction",
	"ecows.hub.name":            "hub",
}

// samples is a set of measurements, each keyed as a Prometheus sample is written
// (name{label="value",...}, labels sorted by name), histograms as their _count, _sum and
// cumulative _bucket samples.
type samples map[string]float64

func sampleKey(name string, labels map[string]string, le string) string {
	if le != "" {
		labels["le"] = le
		defer delete(labels, "le")
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(name + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteString("}")
	return b.String()
}

func formatBound(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// collect reads every measurement through reader, as Registry would name it.
func collect(t testing.TB, reader *sdkmetric.ManualReader) samples {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	s := samples{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != scope {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			name, ok := promNames[m.Name]
			if !ok {
				t.Errorf("instrument %q is not in the documented mapping", m.Name)
				continue
			}
			labels := func(set attribute.Set) map[string]string {
				l := map[string]string{}
				for _, kv := range set.ToSlice() {
					v := kv.Value.String()
					if kv.Key == "network.io.direction" {
						v = map[string]string{"receive": "in", "transmit": "out"}[v]
					}
					l[promLabels[kv.Key]] = v
				}
				if m.Name == "ecows.handshakes" && l["reason"] == "" {
					l["reason"] = "" // Registry labels an accepted handshake with an empty reason
				}
				return l
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					s[sampleKey(name, labels(p.Attributes), "")] = float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					s[sampleKey(name, labels(p.Attributes), "")] = float64(p.Value)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					addHistogram(s, name, labels(p.Attributes), p.Bounds, p.BucketCounts, p.Count, float64(p.Sum))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					addHistogram(s, name, labels(p.Attributes), p.Bounds, p.BucketCounts, p.Count, p.Sum)
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return s
}

func addHistogram(s samples, name string, labels map[string]string, bounds []float64, counts []uint64, count uint64, sum float64) {
	var cum uint64
	for i, n := range counts {
		cum += n
		le := "+Inf"
		if i < len(bounds) {
			le = formatBound(bounds[i])
		}
		s[sampleKey(name+"_bucket", labels, le)] = float64(cum)
	}
	s[sampleKey(name+"_count", labels, "")] = float64(count)
	s[sampleKey(name+"_sum", labels, "")] = sum
}

// gather reads every measurement of reg.
func gather(reg *metrics.Registry) samples {
	s := samples{}
	for _, f := range reg.Gather() {
		for _, m := range f.Metrics {
			labels := map[string]string{}
			for _, l := range m.Labels {
				labels[l.Name] = l.Value
			}
			if f.Type != metrics.Histogram {
				s[sampleKey(f.Name, labels, "")] = m.Value
				continue
			}
			if m.Count == 0 {
				continue // OpenTelemetry has no point for a histogram never recorded
			}
			for _, b := range m.Buckets {
				le := "+Inf"
				if b.UpperBound <= 1e300 {
					le = formatBound(b.UpperBound)
				}
				s[sampleKey(f.Name+"_bucket", labels, le)] = float64(b.Count)
			}
			s[sampleKey(f.Name+"_count", labels, "")] = float64(m.Count)
			s[sampleKey(f.Name+"_sum", labels, "")] = m.Sum
		}
	}
	return s
}

// diff returns the differences between got and want, one line each.
func (got samples) diff(want samples) []string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("%s missing, want %v", k, w))
		} else if !near(g, w) {
			d = append(d, fmt.Sprintf("%s = %v, want %v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s = %v, not expected", k, g))
		}
	}
	slices.Sort(d)
	return d
}

// near reports whether g is w, give or take the rounding of sums of seconds.
func near(g, w float64) bool { return math.Abs(g-w) <= 1e-9*math.Abs(w) }

// check reports the samples of want that got lacks or has with another value.
func (got samples) check(t testing.TB, want samples) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(want))
	for _, k := range keys {
		if g, ok := got[k]; !ok {
			t.Errorf("%s missing, want %v", k, want[k])
		} else if !near(g, want[k]) {
			t.Errorf("%s = %v, want %v", k, g, want[k])
		}
	}
}
