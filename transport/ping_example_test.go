package transport_test

import (
	"context"
	"fmt"
	"io"
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

// A client that must notice a dead server even while it only waits for messages runs
// Keepalive beside its reader; when a pong does not come, the Conn is closed and the reader
// returns.
func ExampleConn_Keepalive() {
	a, b := net.Pipe()
	client := transport.NewConn(a, transport.Client, transport.Setup{}, nil)
	go io.Copy(io.Discard, b) // a server that reads everything and answers nothing
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kerr := make(chan error, 1)
	go func() { kerr <- client.Keepalive(ctx, 20*time.Millisecond, 50*time.Millisecond) }()
	_, _, err := client.ReadMessage(context.Background(), nil)
	fmt.Println("reader returns:", err != nil)
	fmt.Println("keepalive:", <-kerr)
	b.Close()
	// Output:
	// reader returns: true
	// keepalive: websocket: no pong within the keepalive timeout
}
