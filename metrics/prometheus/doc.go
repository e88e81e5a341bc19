// Package prometheus exports an ecows metrics.Registry through the Prometheus client library
// (github.com/prometheus/client_golang): NewCollector returns a prometheus.Collector that a
// program registers in its own prometheus.Registry, next to its other metrics, and serves with
// promhttp.
//
//	g := new(metrics.Registry) // handshake.ServerOptions.Metrics, hub.Options.Metrics
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(ecowsprom.NewCollector(g))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The Registry does the counting, with atomic counters and nothing per message that the
// client library would add; the Collector only converts what Registry.Gather returns, at each
// scrape, into metrics of the same names, help, types, labels and values as the Registry's
// own text output (Registry.ServeHTTP). It is a module of its own so that the main module
// does not depend on client_golang.
//
// The examples are the best way to understand how to use the package.
package prometheus
