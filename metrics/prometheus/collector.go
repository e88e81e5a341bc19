package prometheus

import (
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecows/ecows/metrics"
)

// NewCollector returns a prometheus.Collector that reports what g has counted: at each
// Collect, the Families of g.Gather as constant metrics of the same names, help, types,
// labels and values. g must not be nil.
//
// The Collector is unchecked (its Describe sends nothing): the routes and hubs that make the
// label values appear as the server runs, and the set of families is the Registry's to
// define, so a list of descriptions kept here would be a second copy that could drift from
// it. The Prometheus registry still checks each scrape (no duplicate series, one set of
// label names per family); what it cannot do is refuse, at registration, another collector
// that reports the same names.
func NewCollector(g *metrics.Registry) prometheus.Collector {
	return collector{g}
}

type collector struct{ g *metrics.Registry }

// Describe sends nothing, which makes the collector unchecked (see NewCollector).
func (collector) Describe(chan<- *prometheus.Desc) {}

// Collect converts g's Families. A metric the client library refuses is reported as an
// invalid metric, which fails the scrape with its error, rather than panicking in the
// scraping goroutine.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.g.Gather() {
		// The metrics of a family share their label names, and so one Desc.
		var desc *prometheus.Desc
		var descNames []string
		for _, m := range f.Metrics {
			names := make([]string, len(m.Labels))
			values := make([]string, len(m.Labels))
			for i, l := range m.Labels {
				names[i], values[i] = l.Name, l.Value
			}
			if desc == nil || !slices.Equal(names, descNames) {
				desc, descNames = prometheus.NewDesc(f.Name, f.Help, names, nil), names
			}
			pm, err := constMetric(desc, f.Type, m, values)
			if err != nil {
				pm = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- pm
		}
	}
}

// constMetric returns m as a constant metric of type t.
func constMetric(desc *prometheus.Desc, t metrics.Type, m metrics.Metric, values []string) (prometheus.Metric, error) {
	switch t {
	case metrics.Counter:
		return prometheus.NewConstMetric(desc, prometheus.CounterValue, m.Value, values...)
	case metrics.Gauge:
		return prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.Value, values...)
	}
	// The client library adds the +Inf bucket itself, with the count.
	buckets := make(map[float64]uint64, len(m.Buckets))
	for _, b := range m.Buckets {
		if !math.IsInf(b.UpperBound, 1) {
			buckets[b.UpperBound] = b.Count
		}
	}
	return prometheus.NewConstHistogram(desc, m.Count, m.Sum, buckets, values...)
}
