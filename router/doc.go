// Package router mounts WebSocket endpoints on chi routes. The upgrade happens inside an
// http.Handler, so chi's routing, authentication and request middleware run before it, and
// URL parameters, the route pattern, the request id and the values HTTP middleware put in the
// request's context reach the WebSocket handler through its context. The request itself is
// not kept, headers included, since a connection may live for days: Keep saves what a
// handler needs of it.
//
// A Router tracks the connections it serves; Shutdown sends 1001 Going Away to each, waits
// for their close handshakes, and closes what is left, which http.Server.Shutdown cannot do
// for hijacked connections. It also closes what CloseOnShutdown registered, such as a
// *hub.Hub, whose rooms the Rooms middleware fills with the connections of a route.
//
// The examples are the best way to understand how to use the package.
package router
