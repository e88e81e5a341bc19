package middleware_test

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

// A typed JSON endpoint: the handler gets decoded values and answers with
// transport.WriteJSON. Messages takes the message type from the handler, and JSON decodes
// into it.
func ExampleMessages() {
	type sum struct{ A, B int }
	type result struct{ Sum int }
	add := middleware.HandlerFunc(func(ctx context.Context, c *transport.Conn, s sum) error {
		return transport.WriteJSON(ctx, c, result{s.A + s.B})
	})
	h := middleware.Messages(middleware.JSON, add,
		middleware.Recover(nil), middleware.RateLimit(middleware.RateLimitOptions{Rate: 100, Burst: 10}))

	client, done := loopback(h)
	client.WriteMessage(context.Background(), frame.OpText, []byte(`{"A":2,"B":3}`))
	_, reply, _ := client.ReadMessage(context.Background(), nil)
	fmt.Println(string(reply))
	client.WriteMessage(context.Background(), frame.OpText, []byte(`{"A":`))
	_, _, err := client.ReadMessage(context.Background(), nil)
	fmt.Println(err)
	fmt.Println(<-done)
	// Output:
	// {"Sum":5}
	// websocket: closed with 1007 (invalid payload): websocket: decoding message: unexpected end of JSON input
	// websocket: decoding message: unexpected end of JSON input
}

// echo is a handler of text messages that sends each one back.
var echo = middleware.HandlerFunc(func(ctx context.Context, c *transport.Conn, s string) error {
	_, err := c.WriteMessage(ctx, frame.OpText, []byte(s))
	return err
})

// A typed middleware in one function: it changes what the handlers after it see.
func ExampleIntercept() {
	upper := middleware.Intercept(func(ctx context.Context, c *transport.Conn, s string, next func(context.Context, *transport.Conn, string) error) error {
		return next(ctx, c, strings.ToUpper(s))
	})
	client, done := loopback(middleware.Messages(middleware.Text, echo, upper))
	for _, s := range []string{"hello", "world"} {
		client.WriteMessage(context.Background(), frame.OpText, []byte(s))
		_, reply, _ := client.ReadMessage(context.Background(), nil)
		fmt.Println(string(reply))
	}
	client.Close(frame.CloseNormal, "")
	fmt.Println(<-done)
	// Output:
	// HELLO
	// WORLD
	// <nil>
}

// counter is a middleware with state of its own for each connection: it counts what it
// serves and reports it from its Closed hook when the connection ends.
type counter struct {
	middleware.UnitHandler
	n int
}

func (k *counter) Serve(ctx context.Context, c *transport.Conn, u middleware.Unit) error {
	k.n++
	return k.UnitHandler.Serve(ctx, c, u)
}

func (k *counter) Closed(ctx context.Context, c *transport.Conn, err error) {
	fmt.Println("served:", k.n)
}

// A middleware is called once per connection, so what it makes belongs to that connection;
// the hooks of Opener and Closer tell it when the connection opens and ends.
func ExampleCloser() {
	var count middleware.AnyMiddleware = func(next middleware.UnitHandler) middleware.UnitHandler {
		return &counter{UnitHandler: next}
	}
	client, done := loopback(middleware.Messages(middleware.Text, echo, count))
	for _, s := range []string{"hello", "world"} {
		client.WriteMessage(context.Background(), frame.OpText, []byte(s))
		client.ReadMessage(context.Background(), nil)
	}
	client.Close(frame.CloseNormal, "")
	fmt.Println(<-done)
	// Output:
	// served: 2
	// <nil>
}

// loopback serves h on the server end of a TCP connection on 127.0.0.1 and returns the client
// end, with the result of ServeConn to come. (A real server upgrades HTTP requests: see the
// router package.)
func loopback(h middleware.ConnHandler) (*transport.Conn, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	// Accepted before the listener closes: the dialled connection waits in its backlog.
	sc, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- h.ServeConn(context.Background(), transport.NewConn(sc, transport.Server, transport.Setup{}, nil))
	}()
	return transport.NewConn(nc, transport.Client, transport.Setup{}, nil), done
}

// kinds is an AnyMiddleware: one value works at the frame layer and at the message layer,
// whatever the message type, with no type argument.
var kinds middleware.AnyMiddleware = func(next middleware.UnitHandler) middleware.UnitHandler {
	return middleware.HandlerFunc(func(ctx context.Context, c *transport.Conn, u middleware.Unit) error {
		if f, ok := u.Frame(); ok {
			fmt.Println("frame:", f.Opcode)
		} else {
			fmt.Printf("message: %T\n", u.Value())
		}
		return next.Serve(ctx, c, u)
	})
}

// Middleware that does not look at the type of the units is written once, as an
// AnyMiddleware, and mixed freely with typed middleware.
func ExampleAnyMiddleware() {
	client, done := loopback(middleware.Messages(middleware.Text, echo, middleware.Recover(nil), kinds))
	client.WriteMessage(context.Background(), frame.OpText, []byte("hi"))
	client.ReadMessage(context.Background(), nil)
	client.Close(frame.CloseNormal, "")
	<-done

	data := middleware.HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error { return nil })
	client, done = loopback(middleware.Frames(data, kinds, middleware.AutoPong(nil)))
	client.SendText([]byte("hi"))
	client.Close(frame.CloseNormal, "")
	<-done
	// Output:
	// message: string
	// frame: text
	// frame: close
}
