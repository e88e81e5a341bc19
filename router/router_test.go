package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// roundTrip sends msg and returns the text of the answer.
func roundTrip(t *testing.T, c *transport.Conn, msg string) string {
	t.Helper()
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, got, err := c.ReadMessage(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// queryKey is the context key under which keepQuery keeps the query parameter q.
type queryKey struct{}

var keepQuery = Keep(queryKey{}, func(r *http.Request) string { return r.URL.Query().Get("q") })

// roomEcho answers each text message with the room id from the URL, the query parameter q
// kept by keepQuery, and the message.
func roomEcho(ctx context.Context, c *transport.Conn, s string) error {
	id := chi.URLParamFromCtx(ctx, "id")
	q, _ := ctx.Value(queryKey{}).(string)
	_, err := c.WriteMessage(context.Background(), frame.OpText, []byte(id+"/"+q+": "+s))
	return err
}

func requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestRouteParamsAndAuth(t *testing.T) {
	wstest.CheckGoroutines(t)
	ws := New()
	r := chi.NewRouter()
	ws.Handle(r.With(requireToken, keepQuery), "/rooms/{id}", Text(roomEcho), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())

	_, resp, err := handshake.Dial(context.Background(), wsURL(srv, "/rooms/42"), nil)
	var se *handshake.StatusError
	if !errors.As(err, &se) || resp == nil || resp.StatusCode != http.StatusUnauthorized || !bytes.Contains(se.Body, []byte("no token")) {
		t.Fatalf("without token: %v %v", resp, err)
	}
	c := dialtest.Dial(t, wsURL(srv, "/rooms/42?q=x"), &handshake.DialOptions{Header: http.Header{"Authorization": {"Bearer secret"}}})
	if got := roundTrip(t, c, "hi"); got != "42/x: hi" {
		t.Fatalf("got %q", got)
	}
	if err := c.Close(frame.CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
}

// TestUnderChiAndHlogMiddleware mounts under the HTTP middleware that wraps ResponseWriters or
// cancels request contexts, which breaks upgraders that type-assert http.Hijacker or keep the
// request's context.
func TestUnderChiAndHlogMiddleware(t *testing.T) {
	var logs wstest.Buffer
	logger := zerolog.New(&logs)
	ws := New()
	r := chi.NewRouter()
	r.Use(chimw.RequestID, chimw.Logger, chimw.Compress(5), chimw.Timeout(100*time.Millisecond))
	r.Use(hlog.NewHandler(logger), hlog.AccessHandler(func(r *http.Request, status, size int, d time.Duration) {
		hlog.FromRequest(r).Info().Int("status", status).Msg("access")
	}), hlog.RequestIDHandler("req_id", "Request-Id"))
	var gotID string
	ws.Handle(r, "/echo", Text(func(ctx context.Context, c *transport.Conn, s string) error {
		gotID = middleware.ConnInfoFrom(ctx).RequestID
		_, err := c.WriteMessage(context.Background(), frame.OpText, []byte(s))
		return err
	}), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())

	c := dialtest.Dial(t, wsURL(srv, "/echo"), &handshake.DialOptions{Header: http.Header{"Accept-Encoding": {"gzip"}}})
	if got := roundTrip(t, c, "one"); got != "one" {
		t.Fatalf("got %q", got)
	}
	time.Sleep(200 * time.Millisecond) // past chi's Timeout: the connection must live on
	if got := roundTrip(t, c, "two"); got != "two" {
		t.Fatalf("after the request timeout: %q", got)
	}
	if gotID == "" {
		t.Fatal("chi's request id did not reach the handler")
	}
	c.Close(frame.CloseNormal, "")
}

func TestShutdown(t *testing.T) {
	wstest.CheckGoroutines(t)
	ws := New()
	r := chi.NewRouter()
	ws.Handle(r, "/echo", Text(func(ctx context.Context, c *transport.Conn, s string) error {
		_, err := c.WriteMessage(context.Background(), frame.OpText, []byte(s))
		return err
	}), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()

	const n = 5
	conns := make([]*transport.Conn, n)
	for i := range conns {
		conns[i] = dialtest.Dial(t, wsURL(srv, "/echo"), nil)
		roundTrip(t, conns[i], "up")
	}
	if ws.Len() != n {
		t.Fatalf("Len = %d", ws.Len())
	}
	codes := make(chan frame.CloseCode, n)
	for _, c := range conns {
		go func() {
			_, _, err := c.ReadMessage(context.Background(), nil)
			codes <- transport.CloseStatus(err)
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range n {
		if code := <-codes; code != frame.CloseGoingAway {
			t.Fatalf("client saw close %d, want 1001", code)
		}
	}
	if ws.Len() != 0 {
		t.Fatalf("Len after Shutdown = %d", ws.Len())
	}
	_, resp, err := handshake.Dial(context.Background(), wsURL(srv, "/echo"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Shutdown: %v %v", resp, err)
	}
	select {
	case <-ws.ShuttingDown():
	default:
		t.Fatal("ShuttingDown not closed")
	}
}

func TestShutdownDeadline(t *testing.T) {
	ws := New()
	r := chi.NewRouter()
	ws.Handle(r, "/", Text(func(context.Context, *transport.Conn, string) error { return nil }),
		&handshake.ServerOptions{Options: transport.Options{CloseTimeout: time.Minute}})
	srv := httptest.NewServer(r)
	defer srv.Close()
	dialtest.Dial(t, wsURL(srv, "/"), nil) // a client that never reads, so never answers the close
	for ws.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ws.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if ws.Len() != 0 {
		t.Fatalf("Len = %d", ws.Len())
	}
}

func TestRegisterOnShutdown(t *testing.T) {
	ws := New()
	r := chi.NewRouter()
	ws.Handle(r, "/", Text(func(context.Context, *transport.Conn, string) error { return nil }), nil)
	srv := httptest.NewUnstartedServer(r)
	srv.Config.RegisterOnShutdown(func() { ws.Shutdown(context.Background()) })
	srv.Start()
	defer srv.Close()
	c := dialtest.Dial(t, wsURL(srv, "/"), nil)
	srv.Config.Shutdown(context.Background())
	_, _, err := c.ReadMessage(context.Background(), nil)
	if transport.CloseStatus(err) != frame.CloseGoingAway {
		t.Fatalf("client saw %v", err)
	}
}

type chatIn struct {
	User string `json:"user"`
	Text string `json:"text"`
}

type chatOut struct {
	Room string `json:"room"`
	Line string `json:"line"`
}

func TestJSONEndpoint(t *testing.T) {
	ws := New()
	r := chi.NewRouter()
	ws.Handle(r, "/rooms/{id}", JSON(func(ctx context.Context, c *transport.Conn, m chatIn) error {
		return transport.WriteJSON(ctx, c, chatOut{Room: chi.URLParamFromCtx(ctx, "id"), Line: m.User + ": " + m.Text})
	}), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())
	c := dialtest.Dial(t, wsURL(srv, "/rooms/go"), nil)
	var out chatOut
	if err := json.Unmarshal([]byte(roundTrip(t, c, `{"user":"ann","text":"hello"}`)), &out); err != nil {
		t.Fatal(err)
	}
	if out != (chatOut{Room: "go", Line: "ann: hello"}) {
		t.Fatalf("%+v", out)
	}
	c.WriteMessage(context.Background(), frame.OpText, []byte("{not json"))
	_, _, err := c.ReadMessage(context.Background(), nil)
	if transport.CloseStatus(err) != frame.CloseInvalidPayload {
		t.Fatalf("bad JSON: %v", err)
	}
}

// TestParamsOutliveTheHandler checks that a connection keeps its own URL parameters after its
// HTTP handler has returned and chi has reused its pooled routing context for other requests.
func TestParamsOutliveTheHandler(t *testing.T) {
	ws := New()
	r := chi.NewRouter()
	ws.Handle(r, "/rooms/{id}", Text(func(ctx context.Context, c *transport.Conn, s string) error {
		id := chi.URLParamFromCtx(ctx, "id")
		_, err := c.WriteMessage(context.Background(), frame.OpText, []byte(id+","+middleware.ConnInfoFrom(ctx).Route))
		return err
	}), nil)
	r.Get("/other/{id}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, chi.URLParam(r, "id")) })
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer ws.Shutdown(context.Background())

	c := dialtest.Dial(t, wsURL(srv, "/rooms/first"), nil)
	for i := range 50 { // recycle chi's routing contexts
		res, err := http.Get(srv.URL + "/other/" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	if got := roundTrip(t, c, "which room?"); got != "first,/rooms/{id}" {
		t.Fatalf("got %q", got)
	}
	c.Close(frame.CloseNormal, "")
}

type userKey struct{}

// setUser is an HTTP middleware that puts a user in the request's context, as an
// authentication middleware does.
func setUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, "ann")))
	})
}

// idleHeap dials conns connections to url with header, waits until the server serves them
// all, and returns the server's and clients' live heap per idle connection.
func idleHeap(t *testing.T, ws *Router, url string, header http.Header, conns int) float64 {
	t.Helper()
	before := wstest.LiveHeap()
	clients := make([]*transport.Conn, conns)
	for i := range clients {
		clients[i] = dialtest.Dial(t, url, &handshake.DialOptions{Header: header})
	}
	deadline := time.Now().Add(10 * time.Second)
	for ws.Len() < conns && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ws.Len() < conns {
		t.Fatalf("%d connections served, want %d", ws.Len(), conns)
	}
	held := wstest.LiveHeap()
	for _, c := range clients {
		c.Close(frame.CloseNormal, "")
	}
	for ws.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return (float64(held) - float64(before)) / float64(conns)
}

// A connection keeps nothing of its upgrade request's headers: with 13.5 KiB of them an idle
// connection costs at most 16 KiB more than with a few bytes, and its handler still sees the
// URL parameters, route pattern, request id, a value an HTTP middleware set before the upgrade
// and one kept with Keep.
func TestIdleConnKeepsNoHeaders(t *testing.T) {
	wstest.CheckGoroutines(t)
	const conns = 200
	ws := New()
	r := chi.NewRouter()
	r.Use(chimw.RequestID, setUser)
	ws.Handle(r.With(keepQuery), "/rooms/{id}", Text(func(ctx context.Context, c *transport.Conn, s string) error {
		info := middleware.ConnInfoFrom(ctx)
		user, _ := ctx.Value(userKey{}).(string)
		q, _ := ctx.Value(queryKey{}).(string)
		_, err := c.WriteMessage(context.Background(), frame.OpText, []byte(strings.Join([]string{
			chi.URLParamFromCtx(ctx, "id"), info.Route, strconv.FormatBool(info.RequestID != ""), user, q}, " ")))
		return err
	}), nil)
	srv := httptest.NewUnstartedServer(r)
	srv.Config.MaxHeaderBytes = 64 << 10
	srv.Start()
	defer srv.Close()
	defer ws.Shutdown(context.Background())
	url := wsURL(srv, "/rooms/42?q=x")

	big := http.Header{}
	for i := range 27 {
		big.Set("X-Padding-"+strconv.Itoa(i), strings.Repeat("p", 500)) // 13.5 KiB in all
	}
	c := dialtest.Dial(t, url, &handshake.DialOptions{Header: big})
	if got := roundTrip(t, c, "who?"); got != "42 /rooms/{id} true ann x" {
		t.Fatalf("handler saw %q", got)
	}
	c.Close(frame.CloseNormal, "")

	// A first round leaves behind what the runtime keeps for reuse (goroutine descriptors,
	// pooled objects of net/http) and would otherwise count against the first measured.
	var small, large float64
	t.Run("warm-up", func(t *testing.T) { idleHeap(t, ws, url, nil, conns) })
	t.Run("small", func(t *testing.T) { small = idleHeap(t, ws, url, http.Header{"X-Small": {"s"}}, conns) })
	t.Run("large", func(t *testing.T) { large = idleHeap(t, ws, url, big, conns) })
	t.Logf("idle connection, server and client: %.0f B of live heap with small headers, %.0f B with 13.5 KiB of them (%d connections)",
		small, large, conns)
	if large > small+16<<10 {
		t.Errorf("13.5 KiB of upgrade headers cost an idle connection %.0f B more", large-small)
	}
}
