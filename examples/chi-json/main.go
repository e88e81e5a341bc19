// Command chi-json is a chi app with a typed JSON WebSocket endpoint behind token auth: each
// {"text": "..."} sent to /rooms/{room} is answered with {"room", "user", "text"}.
// Run: go run ./examples/chi-json, then: go run ./cmd/ecows dial -H 'Authorization: Bearer let-me-in' ws://127.0.0.1:8080/rooms/lobby
package main

import (
	"context"
	"crypto/subtle"
	"flag"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

// message is what clients send.
type message struct {
	Text string `json:"text"`
}

// reply is what they get back.
type reply struct {
	Room string `json:"room"`
	User string `json:"user"`
	Text string `json:"text"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	token := flag.String("token", "let-me-in", "the token that lets the user guest in")
	flag.Parse()
	ws := router.New()
	srv := &http.Server{Addr: *addr, Handler: newApp(ws, map[string]string{*token: "guest"}), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("chi-json: ws://%s/rooms/{room}", *addr)
	log.Fatal(srv.ListenAndServe())
}

// newApp routes /rooms/{room} to the JSON handler, for clients with one of tokens (token to
// user name). The token check is ordinary chi middleware: it runs before the upgrade, so a
// client without a token gets 401 and never a WebSocket.
func newApp(ws *router.Router, tokens map[string]string) http.Handler {
	r := chi.NewRouter()
	r.Use(chimw.RequestID, chimw.Recoverer)
	r.Group(func(r chi.Router) {
		r.Use(requireToken(tokens))
		ws.Handle(r, "/rooms/{room}", router.JSON(chat,
			middleware.RateLimit(middleware.RateLimitOptions{Rate: 20, Burst: 40}), // ExceedWait: slows a flood down
		), nil)
	})
	return r
}

// chat answers one message. The room comes from the URL, the user from the auth middleware:
// the request's context values reach the connection's ctx.
func chat(ctx context.Context, c *transport.Conn, m message) error {
	user, _ := ctx.Value(userKey{}).(string)
	return transport.WriteJSON(ctx, c, reply{Room: chi.URLParamFromCtx(ctx, "room"), User: user, Text: m.Text})
}

type userKey struct{}

// requireToken lets in requests that carry a known token, in an Authorization: Bearer header
// or, for browsers, which cannot set headers on a WebSocket, in the token query parameter.
func requireToken(tokens map[string]string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				got = r.URL.Query().Get("token")
			}
			for token, user := range tokens {
				if subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1 {
					next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
					return
				}
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="chi-json"`)
			http.Error(w, "missing or unknown token", http.StatusUnauthorized)
		})
	}
}
