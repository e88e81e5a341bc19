package natsbroker_test

import (
	"log"

	natsbroker "github.com/ecows/ecows/broker/nats"
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
)

// Each node runs a hub on its own NATS connection; rooms are shared by every node with the
// same prefix.
func ExampleConnect() {
	b, err := natsbroker.Connect("nats://127.0.0.1:4222", nil)
	if err != nil {
		log.Fatal(err)
	}
	h, err := hub.New(&hub.Options{
		Broker: b, // closed by h.Close
		OnGap:  func(g hub.Gap) { log.Printf("room %s: messages may be missing: %+v", g.Topic, g) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	// h.Join(conn, "lobby") on any node, then:
	h.Broadcast("lobby", frame.OpText, []byte("hello, every node"))
}
