// Package otel reports what ecows measures on a server to OpenTelemetry: a span per
// WebSocket connection, continuing the trace of its upgrade request, and the measures of
// metrics.Registry as OpenTelemetry instruments. It is a module of its own,
// github.com/ecows/ecows/otel, so that the main module does not depend on OpenTelemetry.
//
// A Recorder is a metrics.Recorder: set it as handshake.ServerOptions.Metrics (or the options
// of router.Handle) and hub.Options.Metrics, alone or beside a metrics.Registry with
// metrics.Multi.
//
// # Spans
//
// Each accepted connection gets a server span named "WebSocket " and its route (the chi
// pattern, such as "WebSocket /rooms/{room}"), from the upgrade to the end of the stream. Its
// parent is the span in the request's context (an HTTP middleware's, such as otelhttp's) or
// else the one the propagator finds in the request's headers: by default the W3C traceparent
// header, whatever the global propagator is. Its attributes are http.route,
// network.peer.address and network.peer.port, user_agent.original, url.scheme ("ws" or
// "wss") and network.protocol.name ("websocket"). When the stream closes, the span gets an
// event "websocket.close" with websocket.close.code (an int) and websocket.close.side
// ("local", "peer", or "none" when the connection ended without a close frame), and the
// status Error when the code says something went wrong: 1002, 1003, 1006 (no close frame),
// 1007, 1008, 1009, 1010, 1011 and 1015. 1000, 1001, 1005 and the application's codes leave
// it unset.
//
// With Options.MessageSpans, each data message also gets a span, a child of its
// connection's: "WebSocket receive" (kind Consumer) or "WebSocket send" (Producer) and the
// route, with network.io.direction, websocket.message.size and websocket.message.wire_size.
// Without it, counting a message allocates nothing.
//
// # Metrics
//
// The instruments, and the names metrics.Registry gives the same measures in the Prometheus
// text format:
//
//	instrument                 kind                     unit          Registry
//	ecows.handshakes           Counter                  {handshake}   ecows_handshakes_total
//	ecows.connections.opened   Counter                  {connection}  ecows_connections_opened_total
//	ecows.connections.open     UpDownCounter            {connection}  ecows_connections_open
//	ecows.connections.closed   Counter                  {connection}  ecows_connections_closed_total
//	ecows.messages             Counter                  {message}     ecows_messages_total
//	ecows.message.bytes        Counter                  By            ecows_message_bytes_total
//	ecows.message.wire_bytes   Counter                  By            ecows_message_wire_bytes_total
//	ecows.message.size         Histogram                By            ecows_message_size_bytes
//	ecows.ping.rtt             Histogram (float)        s             ecows_ping_rtt_seconds
//	ecows.hub.connections      ObservableUpDownCounter  {connection}  ecows_hub_connections
//	ecows.hub.rooms            ObservableUpDownCounter  {room}        ecows_hub_rooms
//	ecows.hub.queued_messages  ObservableUpDownCounter  {message}     ecows_hub_queued_messages
//	ecows.hub.encoded          ObservableCounter        {frame}       ecows_hub_encoded_total
//	ecows.hub.written          ObservableCounter        {frame}       ecows_hub_written_total
//	ecows.hub.dropped          ObservableCounter        {frame}       ecows_hub_dropped_total
//	ecows.hub.evicted          ObservableCounter        {connection}  ecows_hub_evicted_total
//	ecows.hub.published        ObservableCounter        {envelope}    ecows_hub_published_total
//	ecows.hub.publish_errors   ObservableCounter        {envelope}    ecows_hub_publish_errors_total
//	ecows.hub.received         ObservableCounter        {envelope}    ecows_hub_received_total
//	ecows.hub.gaps             ObservableCounter        {gap}         ecows_hub_gaps_total
//	ecows.hub.broker.up        ObservableGauge          (none)        ecows_hub_broker_up
//
// Their attributes are those of the OpenTelemetry semantic conventions where one fits, in
// place of Registry's labels: http.route (Registry's route) on all but the hub's;
// http.response.status_code (status) and error.type (reason; absent when the handshake was
// accepted) on ecows.handshakes; websocket.close.code and websocket.close.side (code and
// side) on ecows.connections.closed, the code a string here, with the peer's codes from 3000
// on grouped as "3xxx" and "4xxx" as Registry does; network.io.direction (direction:
// "receive" for in, "transmit" for out) on the message instruments; ecows.hub.name (hub)
// on the hub's.
//
// The OpenTelemetry Prometheus exporter, which turns dots into underscores and appends the
// unit and _total, makes the names in the last column of these instruments; only the label
// names differ. The histograms have Registry's buckets: message sizes from 16 bytes to 1 MiB
// by fours, ping round trips from 0.5 ms to 5 s. A hub's instruments are observed when the
// meter provider collects, so a broadcast pays nothing for them, and stop when the hub
// closes.
//
// The examples are the best way to understand how to use the package.
package otel
