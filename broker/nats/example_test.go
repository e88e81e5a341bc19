package natsbroker_test

import (
	"context"
	"errors"
	"log"
	"time"

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

// With History the Broker keeps each room's log in JetStream: a node appends to it, and
// reads what followed a position it was given.
func ExampleBroker_Append() {
	b, err := natsbroker.Connect("nats://127.0.0.1:4222", &natsbroker.Options{History: true})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	lim := hub.Limits{Len: 100, Age: time.Hour}
	pos, err := b.Append(ctx, hub.Envelope{Topic: "lobby", Origin: "node-1", Epoch: 1, Seq: 1, Op: frame.OpText, Payload: []byte("hello")}, lim)
	if err != nil {
		log.Fatal(err)
	}
	later, err := b.Read(ctx, "lobby", pos, 100)
	if errors.Is(err, hub.ErrNotRecoverable) {
		log.Print("the log no longer reaches back to ", pos)
	} else if err != nil {
		log.Fatal(err)
	}
	log.Printf("%d envelopes after %v", len(later), pos)
}
