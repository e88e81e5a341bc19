package prometheus_test

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/metrics"
	ecowsprom "github.com/ecows/ecows/metrics/prometheus"
	"github.com/ecows/ecows/transport"
)

// TestCollectorMatchesWriteText feeds Registries by hand through their Recorder methods and
// checks that what promhttp serves through the Collector parses into the same families as
// Registry.WriteText: names, help, types, label sets and values, one family at a time.
func TestCollectorMatchesWriteText(t *testing.T) {
	tests := []struct {
		name  string
		feed  func(g *metrics.Registry)
		fams  int // families with metrics that WriteText writes
		names []string
	}{
		{name: "empty", feed: func(*metrics.Registry) {}},
		{
			name: "refusals only",
			feed: func(g *metrics.Registry) {
				g.Handshake("/chat/{room}", http.StatusForbidden, "origin")
				g.Handshake("/chat/{room}", http.StatusUpgradeRequired, "version")
				g.Handshake("", http.StatusMethodNotAllowed, "method")
			},
			fams:  1,
			names: []string{"ecows_handshakes_total"},
		},
		{
			name: "routes",
			feed: func(g *metrics.Registry) {
				for _, route := range []string{"/chat/{room}", "/echo"} {
					g.Handshake(route, http.StatusSwitchingProtocols, "")
					o := g.Conn(nil, route)
					for _, n := range []int64{0, 16, 17, 1000, 70000, 2 << 20} {
						o.Received(n, n/2)
						o.Sent(n, n)
					}
					o.Pinged(3 * time.Millisecond)
					o.Pinged(7 * time.Second)
					o.Closed(frame.CloseNormal, transport.SidePeer)
					o.Closed(4001, transport.SidePeer)
					o.Closed(4002, transport.SideLocal)
					o.Closed(frame.CloseAbnormal, transport.SideNone)
					g.Conn(nil, route) // still open
				}
			},
			fams: 9,
		},
		{
			name: "label values that need escaping",
			feed: func(g *metrics.Registry) {
				route := "/a\"b\\c\nd/{é}"
				g.Handshake(route, http.StatusSwitchingProtocols, "")
				g.Conn(nil, route).Sent(5, 5)
			},
			fams: 8, // no connection closed
		},
		{
			name: "hubs",
			feed: func(g *metrics.Registry) {
				g.Hub("node-1", func() metrics.HubStats {
					return metrics.HubStats{Conns: 3, Rooms: 2, Queued: 1, Encoded: 10, Written: 25, Dropped: 4, Evicted: 1, Published: 9, PublishErrors: 1, Received: 7, Gaps: 2, LinkUp: true}
				})
				g.Hub("node-2", func() metrics.HubStats { return metrics.HubStats{} })
				remove := g.Hub("gone", func() metrics.HubStats { return metrics.HubStats{Conns: 99} })
				remove()
			},
			fams: 12,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := new(metrics.Registry)
			tc.feed(g)

			var own bytes.Buffer
			if err := g.WriteText(&own); err != nil {
				t.Fatal(err)
			}
			want := parse(t, "WriteText", &own)

			reg := prometheus.NewRegistry()
			reg.MustRegister(ecowsprom.NewCollector(g))
			rec := httptest.NewRecorder()
			promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("promhttp: %d %s", rec.Code, rec.Body)
			}
			got := parse(t, "promhttp", rec.Body)

			if len(want) != tc.fams {
				t.Errorf("WriteText wrote %d families, want %d: %v", len(want), tc.fams, slices.Sorted(maps.Keys(want)))
			}
			for _, name := range tc.names {
				if want[name] == nil {
					t.Errorf("WriteText wrote no %s", name)
				}
			}
			sameFamilies(t, want, got)
		})
	}
}

// parse parses the Prometheus text format, as a Prometheus server of today reads it.
func parse(t *testing.T, what string, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parsing %s: %v", what, err)
	}
	return fams
}

// sameFamilies fails t unless got has the families of want, each equal to its counterpart
// but for the order of its metrics, which the text format leaves free (the client library
// sorts them by label values in the order of the sorted label names; Registry.Gather lists
// the per-route families route by route).
func sameFamilies(t *testing.T, want, got map[string]*dto.MetricFamily) {
	t.Helper()
	if w, g := slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(got)); !slices.Equal(w, g) {
		t.Fatalf("families differ:\nwant %v\n got %v", w, g)
	}
	for name, w := range want {
		g := got[name]
		sortMetrics(w)
		sortMetrics(g)
		if !proto.Equal(w, g) {
			t.Errorf("family %s differs:\nwant %s\n got %s", name, prototext.Format(w), prototext.Format(g))
		}
	}
}

// sortMetrics puts f's metrics in the order of their label pairs.
func sortMetrics(f *dto.MetricFamily) {
	key := func(m *dto.Metric) string {
		var b strings.Builder
		for _, l := range m.GetLabel() {
			b.WriteString(l.GetName() + "\x00" + l.GetValue() + "\x00")
		}
		return b.String()
	}
	slices.SortFunc(f.Metric, func(a, b *dto.Metric) int { return strings.Compare(key(a), key(b)) })
}
