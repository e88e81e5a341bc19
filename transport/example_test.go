package transport_test

import (
	"context"
	"fmt"
	"net"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// pair returns a client and a server Conn joined over TCP on 127.0.0.1, as a handshake
// (package handshake) would make them.
func pair(opts *transport.Options) (client, server *transport.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, _ := ln.Accept()
		accepted <- nc
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	return transport.NewConn(nc, transport.Client, transport.Setup{}, opts),
		transport.NewConn(<-accepted, transport.Server, transport.Setup{}, opts)
}

// A server lowers its read limit once the client has logged in.
func ExampleConn_SetReadLimit() {
	client, server := pair(nil)
	defer client.CloseNow()
	defer server.CloseNow()
	ctx := context.Background()
	go func() {
		client.WriteMessage(frame.OpText, []byte("login: ann, with a long token"))
		client.WriteMessage(frame.OpText, []byte("a message too long for the new limit"))
		client.ReadMessage(ctx, nil) // answers the server's close
	}()

	_, login, _ := server.ReadMessage(ctx, nil)
	fmt.Printf("%s\n", login)
	server.SetReadLimit(16)
	_, _, err := server.ReadMessage(ctx, nil)
	fmt.Println(int(transport.CloseStatus(err)))
	// Output:
	// login: ann, with a long token
	// 1009
}
