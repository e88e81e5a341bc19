// Command chat is a browser chat with rooms on one node: open http://127.0.0.1:8080, pick a
// name and a room; every browser in the same room sees every line. Each room is a hub room
// (package hub) that the route /rooms/{room} puts its connections in, with a history of its
// last lines in the hub's own Bus, from which a browser that reconnects gets what it missed.
//
// Run: go run ./examples/chat [-addr 127.0.0.1:8080]
//
// For two nodes sharing rooms through NATS or Redis, see README.md beside this file.
package main

import (
	"flag"
	"log"

	"github.com/ecows/ecows/examples/chat/app"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	chat, err := app.New(nil, "") // a single node: the hub's own Bus, which keeps the history
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(chat.ListenAndServe(*addr))
}
