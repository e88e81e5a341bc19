package interop

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestGorilla runs every scenario between ecows and gorilla/websocket, both ways.
func TestGorilla(t *testing.T) {
	testPeer(t, peer{
		name:    "gorilla",
		require: func(*testing.T) {},
		server:  gorillaServer,
		client:  gorillaClient,
		exp: expectations{
			serverPick:         proto2, // the server's order of preference
			utf8Code:           0,      // text is not checked on receipt
			echoesReason:       false,  // the default close handler echoes the code only
			seesEchoReason:     true,
			tooBigCode:         1009,
			customPing:         true,
			pingsMidMessage:    true,
			clientPings:        true,
			clientFragments:    true,
			clientInvalidUTF8:  true, // WriteMessage(TextMessage, ...) does not check UTF-8
			clientHasReadLimit: true,
		},
	})
}

// gorillaClose turns the error that ended a gorilla read into a closed event.
func gorillaClose(path string, err error) event {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return event{Ev: "closed", Path: path, Code: ce.Code, Reason: ce.Text}
	}
	return event{Ev: "closed", Path: path, Detail: fmt.Sprint(err)}
}

func gorillaServer(t *testing.T) *peerServer {
	return startGoServer(t, func(g *goServer, w http.ResponseWriter, r *http.Request, behaviour string) {
		up := websocket.Upgrader{
			Subprotocols: []string{proto2, proto1},
			CheckOrigin:  func(*http.Request) bool { return true },
		}
		if behaviour == "fragments" || behaviour == "big-fragmented" {
			// A message writer sends a frame each time its buffer fills (and, on a server,
			// writes larger than twice the buffer go out as frames of their own).
			up.WriteBufferSize = 16
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			g.events.add(event{Ev: "error", Path: r.URL.Path, Detail: err.Error()})
			return
		}
		defer g.track(c)()
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(scenarioTimeout))
		c.SetReadLimit(largeLimit)
		deadline := time.Now().Add(scenarioTimeout)
		// readToEnd reads until the connection ends and reports how.
		readToEnd := func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					g.events.add(gorillaClose(r.URL.Path, err))
					return
				}
			}
		}
		echo := func() {
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil {
					g.events.add(gorillaClose(r.URL.Path, err))
					return
				}
				if err := c.WriteMessage(mt, msg); err != nil {
					g.events.add(event{Ev: "error", Path: r.URL.Path, Detail: err.Error()})
					return
				}
			}
		}
		writeParts := func(mt int, parts ...[]byte) {
			wr, err := c.NextWriter(mt)
			if err == nil {
				for _, p := range parts {
					wr.Write(p)
				}
				err = wr.Close()
			}
			if err != nil {
				g.events.add(event{Ev: "error", Path: r.URL.Path, Detail: err.Error()})
			}
		}
		switch behaviour {
		case "echo":
			echo()
		case "small":
			c.SetReadLimit(smallLimit)
			echo()
		case "fragments":
			c.SetPongHandler(func(s string) error {
				g.events.add(event{Ev: "check", Path: r.URL.Path, Name: "pong-mid-message", OK: s == pingFromPeer, Detail: s})
				return nil
			})
			// 20 bytes make the writer send its first 16-byte fragment; the ping follows it.
			text := []byte(fragText)
			wr, err := c.NextWriter(websocket.TextMessage)
			if err == nil {
				wr.Write(text[:20])
				c.WriteControl(websocket.PingMessage, []byte(pingFromPeer), deadline)
				wr.Write(text[20:])
				err = wr.Close()
			}
			if err != nil {
				g.events.add(event{Ev: "error", Path: r.URL.Path, Detail: err.Error()})
			}
			writeParts(websocket.BinaryMessage, thirds(pattern(fragBinaryLen))...)
			echo()
		case "ping":
			c.SetPongHandler(func(s string) error {
				verdict := "pong-bad "
				if s == pingFromPeer {
					verdict = "pong-ok "
				}
				return c.WriteMessage(websocket.TextMessage, []byte(verdict+s))
			})
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					g.events.add(gorillaClose(r.URL.Path, err))
					return
				}
				if string(msg) == "go" {
					c.WriteControl(websocket.PingMessage, []byte(pingFromPeer), deadline)
				}
			}
		case "close-by-peer":
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(codeFromPeer, reasonFromPeer), deadline)
			readToEnd()
		case "subprotocol":
			c.WriteMessage(websocket.TextMessage, []byte("proto:"+c.Subprotocol()))
			readToEnd()
		case "big":
			c.WriteMessage(websocket.BinaryMessage, pattern(oversize))
			readToEnd()
		case "big-fragmented":
			writeParts(websocket.BinaryMessage, thirds(pattern(fragBinaryLen))...)
			readToEnd()
		default:
			g.events.add(event{Ev: "error", Path: r.URL.Path, Detail: "unknown behaviour"})
		}
	})
}

func gorillaClient(t *testing.T, url, scenario string) peerReport {
	g := newGoClient()
	d := websocket.Dialer{HandshakeTimeout: scenarioTimeout}
	switch scenario {
	case "wss":
		d.TLSClientConfig = clientTLS(t)
	case "subprotocol":
		d.Subprotocols = []string{proto1, proto2}
	case "fragments":
		d.WriteBufferSize = 16 // fragments of 16 bytes, cut inside characters
	}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		g.log.add(event{Ev: "error", Detail: err.Error()})
		return g.report()
	}
	defer g.drain()
	defer c.Close()
	deadline := time.Now().Add(scenarioTimeout)
	c.SetReadDeadline(deadline)
	c.SetReadLimit(largeLimit)
	if scenario == "too-big-for-peer" {
		c.SetReadLimit(smallLimit)
	}
	pongs := make(chan string, 1)
	c.SetPongHandler(func(s string) error {
		select {
		case pongs <- s:
		default:
		}
		return nil
	})
	g.startReader(func() (bool, []byte, error) {
		mt, msg, err := c.ReadMessage()
		return mt == websocket.TextMessage, msg, err
	})
	fail := func(err error) {
		if err != nil {
			g.log.add(event{Ev: "error", Detail: err.Error()})
		}
	}
	// closeWith starts the close handshake and reports the answer.
	closeWith := func(code int, reason string) {
		fail(c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason)))
		g.log.add(gorillaClose("", g.untilError()))
	}
	writeParts := func(mt int, parts ...[]byte) {
		wr, err := c.NextWriter(mt)
		if err == nil {
			for _, p := range parts {
				wr.Write(p)
			}
			err = wr.Close()
		}
		fail(err)
	}

	switch scenario {
	case "echo", "wss":
		sizes := binarySizes
		if scenario == "wss" {
			sizes = []int{65536}
		}
		fail(c.WriteMessage(websocket.TextMessage, []byte(textMsg)))
		g.expect("text", true, []byte(textMsg))
		for _, n := range sizes {
			fail(c.WriteMessage(websocket.BinaryMessage, pattern(n)))
			g.expect(fmt.Sprintf("binary-%d", n), false, pattern(n))
		}
		closeWith(1000, "done")
	case "fragments":
		g.expect("recv-fragmented-text", true, []byte(fragText))
		g.expect("recv-fragmented-binary", false, pattern(fragBinaryLen))
		writeParts(websocket.TextMessage, []byte(fragText))
		g.expect("echo-fragmented-text", true, []byte(fragText))
		writeParts(websocket.BinaryMessage, pattern(fragBinaryLen))
		g.expect("echo-fragmented-binary", false, pattern(fragBinaryLen))
		closeWith(1000, "done")
	case "ping":
		fail(c.WriteControl(websocket.PingMessage, []byte(pingFromPeer), deadline))
		select {
		case p := <-pongs:
			g.log.check("ping-echo", p == pingFromPeer, "pong carried %q", p)
		case <-time.After(scenarioTimeout):
			g.log.check("ping-echo", false, "no pong")
		}
		fail(c.WriteMessage(websocket.TextMessage, []byte("go")))
		g.expect("pong-ok", true, []byte("pong-ok "+pingFromEcows))
		closeWith(1000, "done")
	case "close-by-peer":
		closeWith(codeFromPeer, reasonFromPeer)
	case "close-by-ecows", "close-by-ecows-frames", "invalid-utf8-from-ecows", "too-big-for-peer":
		m := g.next()
		if m.err == nil {
			g.log.add(event{Ev: "received", Detail: fmt.Sprintf("%x", m.data)})
			closeWith(1000, "done")
		} else {
			g.log.add(gorillaClose("", m.err))
		}
	case "subprotocol":
		g.log.add(event{Ev: "proto", Proto: c.Subprotocol()})
		m := g.next()
		g.log.check("subprotocol", m.err == nil && string(m.data) == "proto:"+c.Subprotocol() && c.Subprotocol() == proto2,
			"negotiated %q, server said %q (%v)", c.Subprotocol(), m.data, m.err)
		closeWith(1000, "done")
	case "invalid-utf8-from-peer":
		fail(c.WriteMessage(websocket.TextMessage, invalidUTF8))
		g.log.add(gorillaClose("", g.untilError()))
	case "too-big-for-ecows":
		fail(c.WriteMessage(websocket.BinaryMessage, pattern(oversize)))
		g.log.add(gorillaClose("", g.untilError()))
	default:
		fail(fmt.Errorf("unknown scenario %q", scenario))
	}
	return g.report()
}
