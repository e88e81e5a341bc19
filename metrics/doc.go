// Package metrics measures WebSocket servers: handshakes accepted and refused, connections
// open and closed (by close code and by the side that closed), messages and bytes each way
// with their size distribution and compression, ping round trips, and the hubs' queues,
// drops, evictions and broker links.
//
// A Recorder receives the measurements. Set it as handshake.ServerOptions.Metrics and
// hub.Options.Metrics: Upgrade records each handshake and gives each connection the
// Recorder's transport.Observer, which the Conn calls as messages pass, and package router
// labels everything with the chi route pattern (never the raw path, so that the labels stay
// bounded). A Hub is sampled when the Recorder is read, so a broadcast pays nothing for it.
//
// Registry is the Recorder built in: lock-free counters per route, which it writes in the
// Prometheus text format (ServeHTTP, WriteText) and hands to other exporters as Families.
// The modules github.com/ecows/ecows/metrics/prometheus (a client_golang Collector over a
// Registry) and github.com/ecows/ecows/otel (a span per connection and OpenTelemetry
// metrics) keep their dependencies out of this module; Multi combines Recorders.
//
// The examples are the best way to understand how to use the package.
package metrics
