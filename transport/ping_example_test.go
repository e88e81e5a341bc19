package transport_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ecows/ecows/transport"
)

// Ping needs a reader running on the Conn: the pong is noticed by the read calls.
func ExampleConn_Ping() {
	a, b := net.Pipe()
	client := transport.NewConn(a, transport.Client, transport.Setup{}, nil)
	server := transport.NewConn(b, transport.Server, transport.Setup{}, nil)
	go func() { // the server answers pings while it reads
		for {
			if _, _, err := server.ReadMessage(context.Background(), nil); err != nil {
				return
			}
		}
	}()
	go func() { // the client's reader, which sees the pong
		for {
			if _, _, err := client.ReadMessage(context.Background(), nil); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rtt, err := client.Ping(ctx)
	fmt.Println(err, rtt > 0)
	client.CloseNow()
	server.CloseNow()
	// Output: <nil> true
}
