// Command echo is the smallest ecows echo server: each message goes back as it came.
// Run: go run ./examples/echo, then: go run ./cmd/ecows dial ws://127.0.0.1:8080
package main

import (
	"context"
	"log"
	"net/http"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

func main() {
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", http.HandlerFunc(echo)))
}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := handshake.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an error status
	}
	go serve(c) // the connection outlives the request: let net/http free the request's state
}

func serve(c *transport.Conn) {
	defer c.CloseNow()
	var buf []byte
	for {
		op, msg, err := c.ReadMessage(context.Background(), buf[:0])
		if err != nil {
			return // the peer closed, or the Conn has sent the close code the error carries
		}
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			return
		}
		buf = msg // reuse the buffer: no allocation per message
	}
}
