package middleware

import "context"

// ConnInfo describes the HTTP request a connection was upgraded from, for middleware and
// handlers that log or route by it. The router puts it in the connection's context.
type ConnInfo struct {
	// Route is the route pattern that matched, such as "/rooms/{id}".
	Route string
	// RequestID is the request's id, as chi's RequestID middleware set it.
	RequestID string
}

type connInfoKey struct{}

// WithConnInfo returns a copy of ctx that carries info.
func WithConnInfo(ctx context.Context, info ConnInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, info)
}

// ConnInfoFrom returns the ConnInfo in ctx, or the zero ConnInfo when there is none.
func ConnInfoFrom(ctx context.Context) ConnInfo {
	info, _ := ctx.Value(connInfoKey{}).(ConnInfo)
	return info
}
