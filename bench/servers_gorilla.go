package bench

import (
	"io"
	"net/http"

	"github.com/gorilla/websocket"
)

// gorilla/websocket, as its examples show it: an Upgrader with the default buffers (which
// reuses the buffers net/http hands over on hijack) and compression off, then
// ReadMessage/WriteMessage (examples/echo), or NextReader/NextWriter joined by io.Copy
// (examples/autobahn), which is the shape gorilla recommends for throughput.

var gorillaUpgrader = websocket.Upgrader{EnableCompression: false}

func init() {
	register(Server{Lib: "gorilla", Shape: "message", Doc: "ReadMessage + WriteMessage", Handler: gorillaMessage})
	register(Server{Lib: "gorilla", Shape: "stream", Doc: "NextReader + NextWriter, io.Copy", Handler: gorillaStream})
	registerLatency(LatencyServer{Lib: "gorilla", Doc: "ReadMessage + WriteMessage", Work: gorillaWork, Push: gorillaPush})
}

// gorillaWork and gorillaPush are gorilla's latency handlers (see LatencyServer). gorilla
// allows one reader and one writer at a time, which is what Push has.
func gorillaWork() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := gorillaUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		st := newWorkState()
		write := func(p []byte) error { return c.WriteMessage(websocket.BinaryMessage, p) }
		for {
			_, msg, err := c.ReadMessage()
			if err != nil || st.handle(msg, write) != nil {
				return
			}
		}
	})
}

func gorillaPush() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := gorillaUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		pushLoop(done, func(p []byte) error { return c.WriteMessage(websocket.BinaryMessage, p) })
	})
}

func gorillaMessage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := gorillaUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(MaxMessage)
		for {
			op, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(op, msg); err != nil {
				return
			}
		}
	})
}

func gorillaStream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := gorillaUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(MaxMessage)
		for {
			op, mr, err := c.NextReader()
			if err != nil {
				return
			}
			mw, err := c.NextWriter(op)
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
	})
}
