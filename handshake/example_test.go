package handshake_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// An echo handler: it upgrades, sends back one message and closes. Cross-origin pages from
// *.example.com may connect too.
func ExampleUpgrade() {
	opts := &handshake.ServerOptions{
		Options:        transport.Options{MaxPayloadLen: 1 << 16},
		Subprotocols:   []string{"echo"},
		OriginPatterns: []string{"*.example.com"},
	}
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			return // Upgrade has answered the client with what was wrong
		}
		defer c.CloseNow()
		// The request's context ends when the handler returns; the Conn outlives it.
		op, msg, err := c.ReadMessage(context.Background(), nil)
		if err != nil {
			return
		}
		c.WriteMessage(context.Background(), op, msg)
		c.Close(frame.CloseNormal, "")
	})
	log.Fatal(http.ListenAndServe("localhost:8080", nil))
}

func ExampleDial() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, &handshake.ServerOptions{Subprotocols: []string{"echo"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		if op, msg, err := c.ReadMessage(context.Background(), nil); err == nil {
			c.WriteMessage(context.Background(), op, msg)
		}
		c.Close(frame.CloseNormal, "bye")
	}))
	defer srv.Close()

	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/echo"
	c, resp, err := handshake.Dial(context.Background(), url, &handshake.DialOptions{Subprotocols: []string{"echo"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	fmt.Println(resp.Status, c.Subprotocol())

	c.SendText([]byte("hello"))
	_, msg, err := c.ReadMessage(context.Background(), nil)
	fmt.Printf("%s %v\n", msg, err)
	_, _, err = c.ReadMessage(context.Background(), nil)
	fmt.Println(int(transport.CloseStatus(err)), err)
	// Output:
	// 101 Switching Protocols echo
	// hello <nil>
	// 1000 websocket: closed with 1000 (normal closure): bye
}

// After a wss:// Dial, the response carries the TLS state, with the ALPN protocol agreed on.
func ExampleDial_tlsState() {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := handshake.Upgrade(w, r, nil); err == nil {
			c.Close(frame.CloseNormal, "")
		}
	}))
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	url := "wss" + strings.TrimPrefix(srv.URL, "https")
	c, resp, err := handshake.Dial(context.Background(), url, &handshake.DialOptions{
		TLSConfig: &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	fmt.Println(resp.TLS.HandshakeComplete, resp.TLS.NegotiatedProtocol)
	// Output:
	// true http/1.1
}
