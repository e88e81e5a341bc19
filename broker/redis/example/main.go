// Command example is the chat of examples/chat as one node of several that share their
// rooms through Redis, and their history in Redis Streams. Run Redis and two nodes, then open
// both pages and join one room:
//
//	redis-server --port 6379 --save '' --appendonly yes --appendfsync always --dir /tmp &
//	go run ./example -addr 127.0.0.1:8081 -node a &
//	go run ./example -addr 127.0.0.1:8082 -node b
//
// With the append-only file the history survives a restart of Redis; without it (--appendonly
// no) a restarted Redis starts the rooms' history again, and the browsers are told that the
// lines before it are lost.
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
