// Command server is an echo server for the Autobahn|Testsuite fuzzing client (wstest -m
// fuzzingclient), which tests a server against RFC 6455. Run: go run ./examples/autobahn/server
// [-addr 127.0.0.1:9002], then the suite with examples/autobahn/fuzzingclient.json (README.md).
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// maxLen is over the largest message of the suite (case 9.1.6 sends 16 MiB in one frame).
const maxLen = 16 << 20

var opts = &handshake.ServerOptions{
	Options: transport.Options{MaxPayloadLen: maxLen, MaxMessageLen: maxLen},
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9002", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("autobahn echo server on ws://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// echo upgrades a request for any path and echoes each message with its opcode. The Conn's
// own checks (framing, UTF-8, close codes, limits) decide every protocol case: a violation
// ends ReadMessage after the Conn has sent the close code.
func echo(w http.ResponseWriter, r *http.Request) {
	c, err := handshake.Upgrade(w, r, opts)
	if err != nil {
		return
	}
	defer c.CloseNow()
	var buf []byte
	for {
		op, msg, err := c.ReadMessage(context.Background(), buf[:0])
		if err != nil {
			return
		}
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			return
		}
		buf = msg
	}
}
