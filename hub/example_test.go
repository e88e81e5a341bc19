package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/transport"
)

// pipe stands for an accepted connection: server goes into the hub, client reads.
func pipe() (client, server *transport.Conn) {
	a, b := net.Pipe()
	return transport.NewConn(a, transport.Client, transport.Setup{}, nil), transport.NewConn(b, transport.Server, transport.Setup{}, nil)
}

func read(c *transport.Conn) string {
	_, msg, _ := c.ReadMessage(context.Background(), nil)
	return string(msg)
}

// Rooms on one node: join, count, broadcast to a room or to all of it but the sender.
func Example() {
	h, _ := hub.New(nil) // a single node, with the defaults
	defer h.Close()
	ann, annConn := pipe()
	bob, bobConn := pipe()
	h.Join(annConn, "lobby")
	h.Join(bobConn, "lobby", "dev")
	fmt.Println(h.Count("lobby"), h.Count("dev"))

	h.BroadcastExcept("lobby", annConn, frame.OpText, []byte("bob, ann says hi"))
	h.Broadcast("dev", frame.OpText, []byte("the build is green"))
	h.Broadcast("lobby", frame.OpText, []byte("lunch?"))
	fmt.Println(read(bob))
	fmt.Println(read(bob))
	fmt.Println(read(bob))
	fmt.Println(read(ann))
	// Output:
	// 2 1
	// bob, ann says hi
	// the build is green
	// lunch?
	// lunch?
}

// Scale-out: a hub per node, all on one broker engine. A Bus stands in for the engine here;
// with NATS or Redis each node passes its adapter instead:
//
//	b, _ := natsbroker.New(nc, nil)   // github.com/ecows/ecows/broker/nats
//	b := redisbroker.New(client, nil) // github.com/ecows/ecows/broker/redis
//	h, _ := hub.New(&hub.Options{Broker: b, OnGap: tellRoom})
func Example_scaleOut() {
	engine := hub.NewBus()
	nodeA, _ := hub.New(&hub.Options{NodeID: "a", Broker: engine.Link()})
	nodeB, _ := hub.New(&hub.Options{NodeID: "b", Broker: engine.Link()})
	defer nodeA.Close()
	defer nodeB.Close()

	ann, annConn := pipe()
	bob, bobConn := pipe()
	nodeA.Join(annConn, "lobby") // ann is connected to node A
	nodeB.Join(bobConn, "lobby") // bob to node B

	nodeA.Broadcast("lobby", frame.OpText, []byte("from node A"))
	fmt.Println("ann:", read(ann))
	fmt.Println("bob:", read(bob))
	// Output:
	// ann: from node A
	// bob: from node A
}

// A typed value broadcast as JSON: encoded once, decoded by each member.
func ExampleHub_BroadcastJSON() {
	type line struct {
		User string `json:"user"`
		Text string `json:"text"`
	}
	h, _ := hub.New(nil)
	defer h.Close()
	ann, annConn := pipe()
	bob, bobConn := pipe()
	h.Join(annConn, "lobby")
	h.Join(bobConn, "lobby")

	h.BroadcastJSON("lobby", line{User: "ann", Text: "hi all"})
	for _, c := range []*transport.Conn{ann, bob} {
		var got line
		json.Unmarshal([]byte(read(c)), &got)
		fmt.Printf("%+v\n", got)
	}
	h.BroadcastText("lobby", "plain text too")
	fmt.Println(read(ann), "/", read(bob))
	// Output:
	// {User:ann Text:hi all}
	// {User:ann Text:hi all}
	// plain text too / plain text too
}
