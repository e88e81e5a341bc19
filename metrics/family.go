package metrics

// Family is one metric with all its labelled values, as Registry.Gather returns them: the
// Prometheus data model, so that any exporter can take them over as they are.
type Family struct {
	// Name follows the Prometheus conventions: an ecows_ prefix, _total for counters, base
	// units (seconds, bytes) in the name.
	Name, Help string
	Type       Type
	Metrics    []Metric
}

// Type is the kind of a Family.
type Type uint8

// The kinds of metric.
const (
	Counter   Type = iota // only grows (from zero, when the process starts)
	Gauge                 // goes up and down
	Histogram             // a distribution, in buckets
)

// String returns the name the Prometheus text format gives t.
func (t Type) String() string {
	switch t {
	case Gauge:
		return "gauge"
	case Histogram:
		return "histogram"
	}
	return "counter"
}

// Metric is one labelled value of a Family: Value for a counter or gauge, Buckets, Count and
// Sum for a histogram.
type Metric struct {
	Labels []Label
	Value  float64

	// Buckets counts the observations at or below each upper bound (cumulative, as in
	// Prometheus); the last bound is +Inf, so its count equals Count.
	Buckets []Bucket
	Count   uint64
	Sum     float64
}

// Label is a label's name and value.
type Label struct{ Name, Value string }

// Bucket is a histogram bucket: the observations at or below UpperBound.
type Bucket struct {
	UpperBound float64
	Count      uint64
}
