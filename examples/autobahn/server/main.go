// Command server is an echo server for the Autobahn|Testsuite fuzzing client (wstest -m
// fuzzingclient), which tests a server against RFC 6455 and, with -compress on or takeover,
// permessage-deflate (RFC 7692, groups 12 and 13). Run: go run ./examples/autobahn/server
// [-addr 127.0.0.1:9002] [-compress off], then the suite with
// examples/autobahn/fuzzingclient.json (README.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/transport"
)

// maxLen is over the largest message of the suite (case 9.1.6 sends 16 MiB in one frame).
const maxLen = 16 << 20

func main() {
	addr := flag.String("addr", "127.0.0.1:9002", "listen address")
	compress := compressflag.Flag(flag.CommandLine)
	flag.Parse()
	compression, ok := compressflag.Options(*compress)
	if !ok {
		fmt.Fprintf(os.Stderr, "-compress must be %s, not %q\n", compressflag.Values, *compress)
		flag.Usage()
		os.Exit(2)
	}
	srv := &http.Server{Addr: *addr, Handler: echo(serverOptions(compression)), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("autobahn echo server on ws://%s, -compress %s", *addr, *compress)
	log.Fatal(srv.ListenAndServe())
}

// serverOptions are the limits the suite needs, with compression as -compress says.
func serverOptions(compression *transport.CompressionOptions) *handshake.ServerOptions {
	return &handshake.ServerOptions{
		Options: transport.Options{MaxPayloadLen: maxLen, MaxMessageLen: maxLen, Compression: compression},
	}
}

// echo upgrades a request for any path and echoes each message with its opcode. The Conn's
// own checks (framing, UTF-8, close codes, limits) decide every protocol case: a violation
// ends ReadMessage after the Conn has sent the close code. With permessage-deflate agreed,
// the Conn inflates what comes in and compresses what goes out.
func echo(opts *handshake.ServerOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	})
}
