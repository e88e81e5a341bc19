package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	redisbroker "github.com/ecows/ecows/broker/redis"
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
)

// Each node runs a hub on the same Redis; rooms are shared by every node with the same
// prefix.
func ExampleNew() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	defer client.Close()
	h, err := hub.New(&hub.Options{
		Broker: redisbroker.New(client, nil), // closed by h.Close; the client stays open
		OnGap:  func(g hub.Gap) { log.Printf("room %s: messages may be missing: %+v", g.Topic, g) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	// h.Join(conn, "lobby") on any node, then:
	h.Broadcast("lobby", frame.OpText, []byte("hello, every node"))
}

// printer prints what a Broker delivers; a Hub is the Receiver in an application.
type printer struct{}

func (printer) Receive(e hub.Envelope) { fmt.Printf("%s at %v: %s\n", e.Topic, e.Pos, e.Payload) }
func (printer) LinkDown(err error)     { fmt.Println("link down:", err) }
func (printer) LinkUp()                { fmt.Println("link up") }

// A Broker is also a hub.Log: what a node appends to a topic's log is delivered, with its
// position, to every node subscribed to the topic, this one included, and any node can read
// the log back from a position.
func ExampleBroker_Append() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	defer client.Close()
	b := redisbroker.New(client, nil)
	if err := b.Open(printer{}); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Subscribe(ctx, "lobby"); err != nil {
		log.Fatal(err)
	}
	e := hub.Envelope{Topic: "lobby", Origin: "node-a", Epoch: 1, Seq: 1, Op: frame.OpText, Payload: []byte("hello")}
	pos, err := b.Append(ctx, e, hub.Limits{Len: 1000, Age: time.Hour})
	if err != nil {
		log.Fatal(err) // it matches hub.ErrLinkDown while Redis is unreachable
	}
	// Printed by printer.Receive as well: "lobby at <epoch>:<offset>: hello".
	fmt.Println("appended at", pos)
	history, err := b.Read(ctx, "lobby", hub.Position{}, 100)
	var nr *hub.NotRecoverableError
	switch {
	case errors.As(err, &nr): // only for a position the log no longer reaches back to
		fmt.Println("the history starts at", nr.Oldest)
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("the history holds", len(history), "envelopes, the last", history[len(history)-1].Pos)
	}
}
