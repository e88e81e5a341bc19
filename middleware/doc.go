// Package middleware serves WebSocket connections through handlers composed like chi's HTTP
// middleware: a Handler[T] serves one inbound unit on a connection, a Middleware[T] wraps a
// handler, and Chain composes them left to right, the first outermost.
//
// T is frame.Frame at the frame layer (Frames) or a decoded message type at the message layer
// (Messages, with the decoders Text, Bytes and JSON). Middleware that does not look at T is an
// AnyMiddleware instead: it wraps a UnitHandler, is written once, works at both layers and
// takes no type argument, as Recover, Logger, Keepalive and RateLimit do. Chain, Frames and
// Messages take a list of Layers, each a Middleware[T] for their T or an AnyMiddleware, and
// panic when the route is set up if one is a Middleware for another T.
//
// A connection's chain is built when the connection starts: a Middleware is called once per
// connection, so whatever it creates when called (a token bucket, counters) belongs to that
// connection alone. Handlers that also need to know when a connection opens and ends
// implement Opener and Closer; Chain calls those hooks on every layer, so a middleware never
// forwards them itself.
//
// Options follow the rule of transport.Options: zero means the default, and a negative value
// means none, unlimited or off.
//
// The built-in middleware: Recover (a panic closes its connection with 1011), Logger (zerolog,
// one event at open and one at close), AutoPong and Keepalive (ping answers, dead-peer
// detection), RateLimit (a token bucket per connection: wait, drop or close with 1008) and
// MaxPayload (caps per frame and per message, close 1009); AutoPong and MaxPayload look at
// frames and work at the frame layer only. A server puts them in that order:
// Recover first so that it covers everything after it, Logger next so that it sees every unit
// and every end, Keepalive before anything that may hold a unit for long.
//
// The examples are the best way to understand how to use the package.
package middleware
