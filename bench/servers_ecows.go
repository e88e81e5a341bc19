package bench

import (
	"context"
	"io"
	"net/http"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// ecows, as README.md and examples/echo show it: Upgrade, then, on a goroutine of its own so
// that the HTTP handler returns, ReadMessage into a reused buffer and WriteMessage; or
// NextReader and NextWriter joined by io.Copy for large messages.
// Both limits are raised to MaxMessage (the defaults are 64 KiB frames and 1 MiB messages).

var ecowsOptions = &handshake.ServerOptions{Options: transport.Options{
	MaxPayloadLen: MaxMessage,
	MaxMessageLen: MaxMessage,
}}

func init() {
	register(Server{Lib: "ecows", Shape: "message", Doc: "ReadMessage(ctx, buf[:0]) + WriteMessage", Handler: ecowsMessage})
	register(Server{Lib: "ecows", Shape: "stream", Doc: "NextReader + NextWriter, io.Copy", Handler: ecowsStream})
	registerLatency(LatencyServer{Lib: "ecows", Doc: "ReadMessage + WriteMessage, default Options (FlushDelay 100 µs)", Work: ecowsWork, Push: ecowsPush})
}

// ecowsWork and ecowsPush are ecows's latency handlers (see LatencyServer), with the default
// transport Options, write coalescing included: that is what they are there to measure.
func ecowsWork() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		go func() {
			defer c.CloseNow()
			st := newWorkState()
			write := func(p []byte) error {
				_, err := c.WriteMessage(context.Background(), frame.OpBinary, p)
				return err
			}
			var buf []byte
			for {
				_, msg, err := c.ReadMessage(context.Background(), buf[:0])
				if err != nil || st.handle(msg, write) != nil {
					return
				}
				buf = msg
			}
		}()
	})
}

func ecowsPush() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			var buf []byte
			for {
				_, msg, err := c.ReadMessage(context.Background(), buf[:0])
				if err != nil {
					return
				}
				buf = msg
			}
		}()
		go func() {
			defer c.CloseNow()
			pushLoop(done, func(p []byte) error {
				_, err := c.WriteMessage(context.Background(), frame.OpBinary, p)
				return err
			})
		}()
	})
}

func ecowsMessage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, ecowsOptions)
		if err != nil {
			return
		}
		go echoMessages(c)
	})
}

func echoMessages(c *transport.Conn) {
	defer c.CloseNow()
	var buf []byte
	for {
		op, msg, err := c.ReadMessage(context.Background(), buf[:0])
		if err != nil {
			return
		}
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			return
		}
		buf = msg
	}
}

func ecowsStream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, ecowsOptions)
		if err != nil {
			return
		}
		go echoStreams(c)
	})
}

func echoStreams(c *transport.Conn) {
	defer c.CloseNow()
	ctx := context.Background()
	for {
		op, mr, err := c.NextReader(ctx)
		if err != nil {
			return
		}
		mw, err := c.NextWriter(context.Background(), op)
		if err != nil {
			return
		}
		if _, err := io.Copy(mw, mr); err != nil {
			mw.Close()
			return
		}
		if err := mw.Close(); err != nil {
			return
		}
	}
}
