package handshake_test

import (
	"context"
	"log"
	"net/http"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// A handler that serves WebSockets over HTTP/1.1 and, when the process runs with
// GODEBUG=http2xconnect=1, over HTTP/2 as well (RFC 8441). Over HTTP/2 the WebSocket is the
// request's stream, which ends when the handler returns: the handler waits for the Conn.
func ExampleUpgrade_http2() {
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		log.Printf("WebSocket from %s, over HTTP/2: %v", r.RemoteAddr, c.HTTP2())
		go echo(c)
		<-c.Done() // needed over HTTP/2 only, harmless over HTTP/1.1
	})
	// TLS, and with it HTTP/2: browsers speak HTTP/2 over TLS only.
	log.Fatal(http.ListenAndServeTLS("localhost:8443", "cert.pem", "key.pem", nil))
}

// echo sends every message back until the connection ends.
func echo(c *transport.Conn) {
	defer c.CloseNow()
	for {
		op, msg, err := c.ReadMessage(context.Background(), nil)
		if err != nil {
			return
		}
		c.WriteMessage(context.Background(), op, msg)
	}
}

// Dialing over HTTP/2 where the server offers it: WebSockets to one server share one
// connection. With HTTP2Require, a server without it fails with ErrNoHTTP2.
func ExampleDial_http2() {
	opts := &handshake.DialOptions{HTTP2: handshake.HTTP2Auto}
	c, _, err := handshake.Dial(context.Background(), "wss://example.com/ws", opts)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	log.Printf("over HTTP/2: %v", c.HTTP2())
}
