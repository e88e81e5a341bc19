package metrics

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// ServeHTTP writes the Registry's counts in the Prometheus text format (version 0.0.4), so
// that a Registry can be mounted at /metrics as it is.
func (g *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	g.WriteText(w)
}

// WriteText writes the Registry's counts to w in the Prometheus text format (version 0.0.4).
// Families without metrics are left out.
func (g *Registry) WriteText(w io.Writer) error {
	return writeText(w, g.Gather())
}

func writeText(w io.Writer, fams []Family) error {
	bw := bufio.NewWriter(w)
	for _, f := range fams {
		if len(f.Metrics) == 0 {
			continue
		}
		bw.WriteString("# HELP " + f.Name + " " + escapeHelp(f.Help) + "\n")
		bw.WriteString("# TYPE " + f.Name + " " + f.Type.String() + "\n")
		for _, m := range f.Metrics {
			if f.Type != Histogram {
				writeSample(bw, f.Name, m.Labels, "", m.Value)
				continue
			}
			for _, b := range m.Buckets {
				writeSample(bw, f.Name+"_bucket", m.Labels, formatFloat(b.UpperBound), float64(b.Count))
			}
			writeSample(bw, f.Name+"_sum", m.Labels, "", m.Sum)
			writeSample(bw, f.Name+"_count", m.Labels, "", float64(m.Count))
		}
	}
	return bw.Flush()
}

// writeSample writes one line: name, labels (and le, when not empty) and value.
func writeSample(w *bufio.Writer, name string, labels []Label, le string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || le != "" {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l.Name + `="` + escapeLabel(l.Value) + `"`)
		}
		if le != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(`le="` + le + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func escapeHelp(s string) string { return helpEscaper.Replace(s) }
