// Package handshake opens WebSocket connections: Upgrade completes the server's side of the
// RFC 6455 opening handshake inside a net/http handler, and Dial the client's side for ws://
// and wss:// URLs, directly or through an HTTP CONNECT proxy. Both return a *transport.Conn,
// the seed's websocket.upgrade and websocket.connect.
//
// The examples are the best way to understand how to use the package.
//
// Upgrade checks the request completely (method, version, no body, Upgrade and Connection
// tokens, key, Origin) and answers a refusal with the status that tells the client what to
// change, without taking the connection from net/http; the error says which check failed. By default it
// refuses browser pages from other origins, which could otherwise use a visitor's cookies to
// open connections (cross-site WebSocket hijacking); ServerOptions open that up. Dial checks
// the server's answer just as strictly, reads no more than a bounded head of it (64 KiB by
// default), and returns the answer with its error so the caller can see why a server refused.
//
// Bytes that arrive in the same packet as the handshake (a first frame right behind the
// request or the 101 response) are handed to the Conn, never lost. Compression
// (permessage-deflate, RFC 7692) is negotiated when the options' Compression field is set: Dial
// offers it, Upgrade accepts the first offer it can honour, and each side checks the other's
// parameters as section 7 requires.
//
// Upgrade also serves WebSockets over HTTP/2 (RFC 8441 extended CONNECT), when net/http's
// HTTP/2 server advertises it (GODEBUG=http2xconnect=1).
//
// With ServerOptions.Metrics set, Upgrade records every answer (accepted, or refused with
// its status and a short reason such as "origin" or "version") and gives each accepted Conn
// the Recorder's transport.Observer; package router labels both with the chi route pattern.
//
// Compiled for the browser (GOOS=js GOARCH=wasm), Dial keeps its signature and uses the
// browser's WebSocket: the Conn it returns has the same message-level API, and what a page
// cannot do (request headers, TLS and proxy settings, ping frames) fails with ErrBrowser.
package handshake
