package bench

import (
	"context"
	"io"
	"net/http"

	"github.com/coder/websocket"
)

// coder/websocket (formerly nhooyr.io/websocket), as its docs and its own echo loop
// (internal/test/wstest.EchoLoop) show it: Accept with compression off, the read limit raised
// from its 32 KiB default, then Read/Write, or Reader/Writer joined by io.CopyBuffer with a
// 32 KiB buffer reused for the connection (allocated at the first message, so that it does not
// count in the idle-connection figures).

var coderOptions = &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled}

func init() {
	register(Server{Lib: "coder", Shape: "message", Doc: "Read + Write", Handler: coderMessage})
	register(Server{Lib: "coder", Shape: "stream", Doc: "Reader + Writer, io.CopyBuffer", Handler: coderStream})
	registerLatency(LatencyServer{Lib: "coder", Doc: "Read + Write", Work: coderWork, Push: coderPush})
}

// coderWork and coderPush are coder's latency handlers (see LatencyServer).
func coderWork() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, coderOptions)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		st := newWorkState()
		write := func(p []byte) error { return c.Write(ctx, websocket.MessageBinary, p) }
		for {
			_, msg, err := c.Read(ctx)
			if err != nil || st.handle(msg, write) != nil {
				return
			}
		}
	})
}

func coderPush() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, coderOptions)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
		pushLoop(done, func(p []byte) error { return c.Write(ctx, websocket.MessageBinary, p) })
	})
}

func coderMessage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, coderOptions)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(MaxMessage)
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return
			}
		}
	})
}

func coderStream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, coderOptions)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(MaxMessage)
		ctx := context.Background()
		var buf []byte
		for {
			typ, mr, err := c.Reader(ctx)
			if err != nil {
				return
			}
			mw, err := c.Writer(ctx, typ)
			if err != nil {
				return
			}
			if buf == nil {
				buf = make([]byte, 32<<10)
			}
			if _, err := io.CopyBuffer(mw, mr, buf); err != nil {
				mw.Close()
				return
			}
			if err := mw.Close(); err != nil {
				return
			}
		}
	})
}
