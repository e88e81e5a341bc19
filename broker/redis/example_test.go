package redisbroker_test

import (
	"log"

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
