package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

// Router serves WebSocket endpoints and tracks their live connections. The zero value is not
// usable; call New.
type Router struct {
	mu       sync.Mutex
	conns    map[*transport.Conn]struct{}
	closers  []io.Closer
	closing  bool
	wg       sync.WaitGroup
	shutdown chan struct{} // closed by Shutdown
	closed   chan struct{} // closed once the closers have returned
	closeErr error         // what they returned; set before closed is closed
}

// New returns a Router with no connections.
func New() *Router {
	return &Router{
		conns:    make(map[*transport.Conn]struct{}),
		shutdown: make(chan struct{}),
		closed:   make(chan struct{}),
	}
}

// Handle serves h at pattern on r, for the requests that open a WebSocket: GET over HTTP/1.1
// and extended CONNECT over HTTP/2 (RFC 8441; see handshake.Upgrade for the GODEBUG setting
// net/http needs). It upgrades each request with opts (nil for the defaults) and serves the
// connection with h until it ends. Use
// r.With(...) for per-route HTTP middleware, and middleware.Frames or middleware.Messages for
// per-route WebSocket middleware.
func (rt *Router) Handle(r chi.Router, pattern string, h middleware.ConnHandler, opts *handshake.ServerOptions) {
	hf := rt.Handler(h, opts)
	r.Get(pattern, hf)
	r.Method(http.MethodConnect, pattern, hf)
}

// CloseOnShutdown makes Shutdown close c (a *hub.Hub, typically) once it has started closing
// every connection with 1001 Going Away; Shutdown waits for Close to return and returns its
// error. What is registered after Shutdown has begun is closed at once.
func (rt *Router) CloseOnShutdown(c io.Closer) {
	rt.mu.Lock()
	if !rt.closing {
		rt.closers = append(rt.closers, c)
		rt.mu.Unlock()
		return
	}
	rt.mu.Unlock()
	c.Close()
}

// Handler returns the http.Handler Handle installs, for use with any router or mux (route GET
// and, for HTTP/2, CONNECT to it). A request that arrives after Shutdown has begun gets 503
// Service Unavailable. Each HTTP/1.1 connection is served on a goroutine of its own and the
// HTTP handler returns at once, so that net/http can free what it keeps per request while the
// connection lives on; a WebSocket over HTTP/2 is served in the handler, since its stream
// ends when the handler returns.
//
// The connection's context keeps the values HTTP middleware put in the request's context, and
// with them whatever they hold: a middleware that stores the request there keeps its headers
// alive as long as the connection (chi's middleware.Logger does, in its log entry), so leave
// such middleware out of WebSocket routes.
func (rt *Router) Handler(h middleware.ConnHandler, opts *handshake.ServerOptions) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o := withRoute(opts, r)
		if !rt.enter() {
			w.Header().Set("Connection", "close")
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			if o != nil && o.Metrics != nil {
				o.Metrics.Handshake(o.Route, http.StatusServiceUnavailable, "shutdown")
			}
			return
		}
		c, err := handshake.Upgrade(w, r, o)
		if err != nil {
			rt.wg.Done()
			return // Upgrade has answered the request
		}
		if !rt.track(c, true) {
			go c.Close(frame.CloseGoingAway, "server shutting down") // Shutdown began mid-upgrade
		}
		ctx := connContext(r)
		serve := func() {
			defer rt.wg.Done()
			defer rt.track(c, false)
			h.ServeConn(ctx, c) // what ended the connection is the handler's to log (middleware.Logger)
			c.CloseNow()
		}
		if c.HTTP2() {
			serve() // an HTTP/2 stream ends when its handler returns
			return
		}
		go serve()
	}
}

// connContext returns the context a connection is served with. The connection outlives the
// request: it keeps the request's context values (what HTTP middleware put there, such as a
// user or a logger) but not its cancellation, which http.TimeoutHandler or chi's Timeout
// middleware would fire while the connection is in use, and it holds a copy of chi's routing
// context, which chi puts back in a pool for other requests once the HTTP handler returns.
// It does not keep the request itself, whose headers alone may weigh tens of KiB for the
// connection's whole life: Keep is how a handler gets what it needs of it.
func connContext(r *http.Request) context.Context {
	ctx := context.WithoutCancel(r.Context())
	if rc := chi.RouteContext(ctx); rc != nil {
		ctx = context.WithValue(ctx, chi.RouteCtxKey, rc.Clone())
	}
	return middleware.WithConnInfo(ctx, middleware.ConnInfo{
		Route:     routePattern(r),
		RequestID: chimw.GetReqID(ctx),
	})
}

// Keep returns HTTP middleware that puts fn(r) in each request's context under key, where a
// WebSocket handler mounted after it finds it with ctx.Value(key) for the life of the
// connection. The router keeps the upgrade request's context but not the request, so this is
// how a handler gets what it needs of the request itself (a header, a query parameter, the
// remote address); fn should return only that, since the value lives as long as the
// connection. Use it with r.With for one endpoint or r.Use for all. key follows the rules of
// context.WithValue.
func Keep[V any](key any, fn func(r *http.Request) V) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key, fn(r))))
		})
	}
}

// enter counts a request in unless Shutdown has begun.
func (rt *Router) enter() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closing {
		return false
	}
	rt.wg.Add(1)
	return true
}

// track adds or removes a live connection and reports whether Shutdown has not begun.
func (rt *Router) track(c *transport.Conn, live bool) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if live {
		rt.conns[c] = struct{}{}
	} else {
		delete(rt.conns, c)
	}
	return !rt.closing
}

// Len returns the number of live connections.
func (rt *Router) Len() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(rt.conns)
}

// Shutdown stops accepting upgrades, sends 1001 Going Away on every live connection, closes
// what CloseOnShutdown registered, and waits until the handlers and those Close calls have
// returned or ctx ends; then it closes the connections left at once and waits for the rest.
// It returns ctx's error, if it ended, joined with those of the Close calls. It is safe to
// call more than once. Call it before the HTTP server's Shutdown, which forgets hijacked
// connections:
//
//	ws.Shutdown(ctx) // 1001 to every WebSocket client, waits for their close handshakes
//	srv.Shutdown(ctx)
//
// http.Server.RegisterOnShutdown also works, but net/http runs those functions in their own
// goroutine without waiting, so a program that exits right after srv.Shutdown may cut the
// close handshakes short.
func (rt *Router) Shutdown(ctx context.Context) error {
	rt.mu.Lock()
	first := !rt.closing
	if first {
		rt.closing = true
		close(rt.shutdown)
	}
	conns := make([]*transport.Conn, 0, len(rt.conns))
	for c := range rt.conns {
		conns = append(conns, c)
	}
	closers := rt.closers
	rt.closers = nil
	rt.mu.Unlock()
	for _, c := range conns {
		go c.Close(frame.CloseGoingAway, "server shutting down")
	}
	if first {
		// A hub's Close may wait for a write to a stuck connection; the deadline below cuts it.
		go func() {
			var errs []error
			for _, c := range closers {
				errs = append(errs, c.Close())
			}
			rt.closeErr = errors.Join(errs...)
			close(rt.closed)
		}()
	}
	done := make(chan struct{})
	go func() {
		rt.wg.Wait()
		<-rt.closed
		close(done)
	}()
	select {
	case <-done:
		return rt.closeErr
	case <-ctx.Done():
	}
	rt.mu.Lock()
	for c := range rt.conns {
		c.CloseNow()
	}
	rt.mu.Unlock()
	<-done
	return errors.Join(ctx.Err(), rt.closeErr)
}

// ShuttingDown returns a channel closed when Shutdown begins, for handlers that wait on
// something other than their connection.
func (rt *Router) ShuttingDown() <-chan struct{} { return rt.shutdown }

// withRoute returns opts with Route set to r's chi route pattern, for metrics; opts itself
// when there are no metrics to label or r was not routed by chi.
func withRoute(opts *handshake.ServerOptions, r *http.Request) *handshake.ServerOptions {
	if opts == nil || opts.Metrics == nil {
		return opts
	}
	rc := chi.RouteContext(r.Context())
	if rc == nil || rc.RoutePattern() == "" {
		return opts
	}
	o := *opts
	o.Route = rc.RoutePattern()
	return &o
}

// routePattern returns the chi route pattern that matched r, or its path outside chi.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return r.URL.Path
}

// JSON returns a ConnHandler for a typed JSON endpoint: every message is decoded into an M
// and passed to fn, wrapped in mw. Answer with transport.WriteJSON(ctx, c, v).
func JSON[M any](fn func(ctx context.Context, c *transport.Conn, m M) error, mw ...middleware.Layer) middleware.ConnHandler {
	return middleware.Messages(middleware.JSON, middleware.HandlerFunc(fn), mw...)
}

// Text returns a ConnHandler for a text endpoint: every text message is passed to fn as a
// string; binary messages close the connection with 1003.
func Text(fn func(ctx context.Context, c *transport.Conn, s string) error, mw ...middleware.Layer) middleware.ConnHandler {
	return middleware.Messages(middleware.Text, middleware.HandlerFunc(fn), mw...)
}
