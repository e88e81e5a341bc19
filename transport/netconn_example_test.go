package transport_test

import (
	"bufio"
	"context"
	"fmt"
	"net"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// NetConn carries a byte-stream protocol over a WebSocket: here a line protocol read with
// bufio, whose lines need not line up with the messages.
func ExampleNetConn() {
	a, b := net.Pipe()
	client := transport.NewConn(a, transport.Client, transport.Setup{}, nil)
	server := transport.NewConn(b, transport.Server, transport.Setup{}, nil)
	go func() {
		client.WriteMessage(context.Background(), frame.OpBinary, []byte("hello\nwor"))
		client.WriteMessage(context.Background(), frame.OpBinary, []byte("ld\n"))
	}()
	nc := transport.NetConn(context.Background(), server, frame.OpBinary)
	r := bufio.NewReader(nc)
	for i := 0; i < 2; i++ {
		line, _ := r.ReadString('\n')
		fmt.Printf("%q\n", line)
	}
	client.CloseNow()
	nc.Close()
	// Output:
	// "hello\n"
	// "world\n"
}
