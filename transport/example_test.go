package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

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
		client.WriteMessage(ctx, frame.OpText, []byte("login: ann, with a long token"))
		client.WriteMessage(ctx, frame.OpText, []byte("a message too long for the new limit"))
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

// A server that only writes still answers pings and the close handshake, and learns from the
// context that the client has gone.
func ExampleConn_CloseRead() {
	client, server := pair(nil)
	defer client.CloseNow()
	defer server.CloseNow()
	go func() {
		for range 3 {
			_, msg, _ := client.ReadMessage(context.Background(), nil)
			fmt.Printf("client got %s\n", msg)
		}
		client.Close(frame.CloseNormal, "enough")
	}()

	ctx := server.CloseRead(context.Background())
	for i := 1; ctx.Err() == nil; i++ {
		server.SendText(fmt.Appendf(nil, "tick %d", i))
		time.Sleep(time.Millisecond)
	}
	fmt.Println("server: client gone")
	// Output:
	// client got tick 1
	// client got tick 2
	// client got tick 3
	// server: client gone
}

// A write bounded by a context: had the client stopped reading, the write would have been cut
// after a second, and the Conn closed.
func ExampleConn_WriteMessage() {
	client, server := pair(nil)
	defer client.CloseNow()
	defer server.CloseNow()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := server.WriteMessage(ctx, frame.OpText, []byte("hello")); err != nil {
		fmt.Println(err)
		return
	}
	_, msg, err := client.ReadMessage(context.Background(), nil)
	fmt.Printf("%s %v\n", msg, err)

	cancel() // a context that is done writes nothing, and the Conn goes on
	_, err = server.WriteMessage(ctx, frame.OpText, []byte("never sent"))
	fmt.Println(err)
	// Output:
	// hello <nil>
	// context canceled
}

// A message streamed from a reader, in fragments, bounded by a context.
func ExampleConn_NextWriter() {
	client, server := pair(nil)
	defer client.CloseNow()
	defer server.CloseNow()

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, msg, err := client.ReadMessage(context.Background(), nil)
		fmt.Println(len(msg), err)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := server.NextWriter(ctx, frame.OpText)
	if err != nil {
		fmt.Println(err)
		return
	}
	io.Copy(w, strings.NewReader(strings.Repeat("streamed ", 10000)))
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	// Output:
	// 90000 <nil>
}

// JSON both ways over a plain Conn.
func ExampleWriteJSON() {
	client, server := pair(nil)
	defer client.CloseNow()
	defer server.CloseNow()
	ctx := context.Background()

	type Greeting struct {
		From string `json:"from"`
		Text string `json:"text"`
	}
	transport.WriteJSON(ctx, client, Greeting{From: "ann", Text: "hello"})
	var g Greeting
	err := transport.ReadJSON(ctx, server, &g)
	fmt.Printf("%+v %v\n", g, err)
	// Output:
	// {From:ann Text:hello} <nil>
}

// A binary message, or text that is not the JSON expected, is a *JSONError; the Conn goes on.
func ExampleReadJSON() {
	client, server := pair(nil)
	defer client.CloseNow()
	defer server.CloseNow()
	ctx := context.Background()

	client.WriteMessage(ctx, frame.OpText, []byte(`{"n": "one"}`))
	client.WriteMessage(ctx, frame.OpText, []byte(`{"n": 1}`))
	var v struct{ N int }
	err := transport.ReadJSON(ctx, server, &v)
	var je *transport.JSONError
	fmt.Println(errors.As(err, &je))
	err = transport.ReadJSON(ctx, server, &v)
	fmt.Println(v.N, err)
	// Output:
	// true
	// 1 <nil>
}
