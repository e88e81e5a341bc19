// Command ecows is the ecows WebSocket toolkit's command-line tool: an echo server to try
// things against, an interactive client, and a load generator.
//
// Usage:
//
//	ecows serve [-addr 127.0.0.1:8080] [-path /ws] [-rate N] [-max-payload N] [-keepalive 30s] [-compress off] [-log-level info] [-metrics host:port] [-tls-cert FILE -tls-key FILE | -tls-self-signed]
//	ecows dial URL [-H 'Name: value']... [-subprotocol p] [-origin o] [-insecure] [-timeout 10s] [-compress off] [-http2 off] [-reconnect]
//	ecows bench URL [-c 64] [-size 1024] [-duration 10s] [-window 16]
//
// Serve runs an echo server built from the library's router and middleware (Recover, Logger,
// MaxPayload, RateLimit when -rate is set, AutoPong with keepalive pings): every text and
// binary frame goes back as it came, so messages come back whole, fragmented or not. A page at
// / opens a WebSocket to the echo path from a browser. SIGINT or SIGTERM sends 1001 Going Away
// to every client and stops the server within 5 seconds. It prints the URLs it serves, with
// the real port when -addr asks for port 0. With -compress on (or takeover, which keeps the
// compression context between messages) it agrees to permessage-deflate, and a message that
// came in one frame goes back compressed; fragments still go back frame by frame. With
// -tls-cert and -tls-key, or -tls-self-signed (a certificate made at start for 127.0.0.1, ::1
// and localhost, whose SHA-256 fingerprint is printed), it serves HTTPS and WSS, HTTP/1.1 and
// HTTP/2 on one port; browsers then open the WebSocket over the page's HTTP/2 connection
// (RFC 8441), which the command enables in net/http (GODEBUG=http2xconnect=1) unless GODEBUG
// sets http2xconnect itself. With -metrics it also serves the counts of package metrics
// (handshakes, connections, messages, bytes, close codes) in the Prometheus text format at
// http://host:port/metrics, on a listener of their own, and prints that URL.
//
// Dial connects to a WebSocket server and sends each line of standard input as a text
// message; "/ping [data]" sends a ping and "/close [code] [reason]" closes ("//x" sends the
// text "/x"). -compress offers permessage-deflate, and the extensions the server agreed to
// are printed with the subprotocol on the first line. -http2 auto dials wss:// over HTTP/2
// where the server offers it, require only over HTTP/2 (h2c for ws://); the first line says
// "over HTTP/2" when it is. Every frame received is printed on a line of its own:
//
//	< text: hello
//	< binary: 3 bytes 010203
//	< ping: data
//	< pong: data
//	< close: 1000 (normal closure) bye
//
// Pings are answered. At the end of input dial closes with 1000. It exits with 0 when the
// connection ends with a close handshake that it started, or that the server started with
// 1000, 1001 or no code, and with 1 otherwise, printing why: for a refused handshake, the
// HTTP status and the start of the body. With -reconnect it stays connected (package
// reconnect): after a connection ends, or an attempt fails, for a reason that may pass (a
// reset, a 5xx answer, close codes such as 1001, 1006, 1012), it prints the reason and the
// random, growing delay, waits, and dials again; input goes on to the new connection. It
// stops, as without the flag, at the end of input, at /close, and at a reason that another
// attempt would meet again (a 4xx answer, close codes such as 1008).
//
// Bench opens -c connections to an echo server, each keeping up to -window binary messages of
// -size bytes in flight for -duration, and prints messages per second, megabytes of echoed
// payload per second and round-trip latency percentiles (p50, p99, p99.9), with a progress
// line on standard error every second. Each message carries its sequence number and send
// time, so any echo server will do.
//
// Bad flags or arguments exit with 2.
package main
