// Command example is the chat of examples/chat as one node of several that share their
// rooms through Redis. Run Redis and two nodes, then open both pages and join one room:
//
//	redis-server --port 6379 --save '' --appendonly no &
//	go run ./example -addr 127.0.0.1:8081 -node a &
//	go run ./example -addr 127.0.0.1:8082 -node b
package main

import (
	"flag"
	"log"

	"github.com/redis/go-redis/v9"

	redisbroker "github.com/ecows/ecows/broker/redis"
	"github.com/ecows/ecows/examples/chat/app"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	node := flag.String("node", "", "node name (default random)")
	flag.Parse()
	// No retries: a publish while Redis is gone fails at once, and the chat goes on locally.
	client := redis.NewClient(&redis.Options{Addr: *redisAddr, MaxRetries: -1})
	defer client.Close()
	chat, err := app.New(redisbroker.New(client, nil), *node)
	if err != nil {
		log.Fatal(err)
	}
	if err := chat.ListenAndServe(*addr); err != nil {
		log.Fatal(err)
	}
}
