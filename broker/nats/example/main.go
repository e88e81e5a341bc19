// Command example is the chat of examples/chat as one node of several that share their
// rooms through NATS, and their history through JetStream (natsbroker.Options.History). With
// -embed the node also runs the NATS server with JetStream, its store in -store, so two nodes
// need nothing else; open both pages and join one room:
//
//	go run ./example -addr 127.0.0.1:8081 -node a -embed 127.0.0.1:4222 &
//	go run ./example -addr 127.0.0.1:8082 -node b
//
// A NATS server of your own needs JetStream (nats-server -js -sd DIR).
package main

import (
	"errors"
	"flag"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	natsbroker "github.com/ecows/ecows/broker/nats"
	"github.com/ecows/ecows/examples/chat/app"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	url := flag.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	embed := flag.String("embed", "", "run a NATS server in this process on this host:port, such as 127.0.0.1:4222")
	store := flag.String("store", filepath.Join(os.TempDir(), "ecows-chat-jetstream"), "the embedded server's JetStream store directory, which keeps the rooms' history across its restarts")
	node := flag.String("node", "", "node name (default random)")
	flag.Parse()
	if *embed != "" {
		srv, err := embedded(*embed, *store)
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Shutdown()
	}
	// Every node keeps history alike: the chat's rooms have it (app.New).
	b, err := natsbroker.Connect(*url, &natsbroker.Options{History: true})
	if err != nil {
		log.Fatal(err)
	}
	chat, err := app.New(b, *node)
	if err != nil {
		log.Fatal(err)
	}
	if err := chat.ListenAndServe(*addr); err != nil {
		log.Fatal(err)
	}
}

// embedded starts a NATS server on hostport with JetStream, its store in the directory store.
func embedded(hostport, store string) (*server.Server, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{Host: host, Port: port, NoSigs: true, JetStream: true, StoreDir: store})
	if err != nil {
		return nil, err
	}
	srv.ConfigureLogger()
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("the NATS server did not start")
	}
	log.Printf("chat: NATS server on nats://%s, JetStream store in %s", hostport, store)
	return srv, nil
}
