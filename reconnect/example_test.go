package reconnect_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/reconnect"
	"github.com/ecows/ecows/transport"
)

// A client that stays connected to a server that restarts: the server closes its first
// connection with 1012 Service Restart, which is worth another attempt, and the session
// returns nil once it has its answer on the second.
func ExampleRun() {
	var restarted atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if !restarted.Swap(true) {
			c.Close(frame.CloseServiceRestart, "restarting")
			return
		}
		if op, msg, err := c.ReadMessage(context.Background(), nil); err == nil {
			c.WriteMessage(context.Background(), op, msg)
		}
		c.Close(frame.CloseNormal, "")
	}))
	defer srv.Close()

	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	err := reconnect.Run(context.Background(), url, func(ctx context.Context, c *transport.Conn) error {
		c.WriteMessage(context.Background(), frame.OpText, []byte("hello"))
		_, msg, err := c.ReadMessage(ctx, nil)
		if err != nil {
			return err // the end of this connection: Run decides whether to dial again
		}
		fmt.Printf("answer: %s\n", msg)
		return nil // done: Run returns nil
	}, &reconnect.Options{
		BaseDelay: 10 * time.Millisecond,
		OnDisconnect: func(e reconnect.Event) {
			fmt.Printf("attempt %d ended: %v; retry: %v\n", e.Attempt, e.Err, e.Retry)
		},
	})
	fmt.Println("Run:", err)
	// Output:
	// attempt 1 ended: websocket: closed with 1012 (service restart): restarting; retry: true
	// answer: hello
	// attempt 2 ended: <nil>; retry: false
	// Run: <nil>
}

// An application that gives up when the server says it is overloaded wraps Transient, which
// retries 1013 Try Again Later.
func ExampleTransient() {
	retry := func(err error) bool {
		if transport.CloseStatus(err) == frame.CloseTryAgainLater {
			return false
		}
		return reconnect.Transient(err)
	}
	fmt.Println(retry(&transport.CloseError{Code: frame.CloseTryAgainLater}))
	fmt.Println(retry(&transport.CloseError{Code: frame.CloseServiceRestart}))
	fmt.Println(retry(&transport.CloseError{Code: frame.ClosePolicyViolation}))
	// Output:
	// false
	// true
	// false
}
