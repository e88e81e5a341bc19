package interop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/coder/websocket"
)

// TestCoder runs every scenario between ecows and coder/websocket, both ways.
func TestCoder(t *testing.T) {
	testPeer(t, peer{
		name:    "coder",
		require: func(*testing.T) {},
		server:  coderServer,
		client:  coderClient,
		exp: expectations{
			serverPick:         proto2, // the server's order of preference
			utf8Code:           0,      // text is not checked on receipt
			echoesReason:       true,
			seesEchoReason:     false, // Close reports only whether the echoed code matched
			tooBigCode:         1009,
			customPing:         false, // Ping sends a counter and waits for its echo
			clientPings:        true,
			clientFragments:    true,
			clientInvalidUTF8:  true, // Write(MessageText, ...) does not check UTF-8
			clientHasReadLimit: true,
		},
	})
}

// coderClose turns the error that ended a coder read into a closed event.
func coderClose(path string, err error) event {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return event{Ev: "closed", Path: path, Code: int(ce.Code), Reason: ce.Reason}
	}
	return event{Ev: "closed", Path: path, Detail: fmt.Sprint(err)}
}

// coderWriteParts sends a message with one Write per part: coder sends each Write as a frame.
func coderWriteParts(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, parts ...[]byte) error {
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return w.Close()
}

func coderServer(t *testing.T) *peerServer {
	return startGoServer(t, func(g *goServer, w http.ResponseWriter, r *http.Request, behaviour string) {
		path := r.URL.Path
		pongs := make(chan string, 1)
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:       []string{proto2, proto1},
			InsecureSkipVerify: true, // no origin check
			OnPongReceived: func(_ context.Context, p []byte) {
				select {
				case pongs <- string(p):
				default:
				}
			},
		})
		if err != nil {
			g.events.add(event{Ev: "error", Path: path, Detail: err.Error()})
			return
		}
		defer g.track(coderCloser{c})()
		defer c.CloseNow()
		ctx, cancel := ctxTimeout()
		defer cancel()
		c.SetReadLimit(largeLimit)
		fail := func(err error) {
			if err != nil {
				g.events.add(event{Ev: "error", Path: path, Detail: err.Error()})
			}
		}
		readToEnd := func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					g.events.add(coderClose(path, err))
					return
				}
			}
		}
		echo := func() {
			for {
				typ, msg, err := c.Read(ctx)
				if err != nil {
					g.events.add(coderClose(path, err))
					return
				}
				if err := c.Write(ctx, typ, msg); err != nil {
					fail(err)
					return
				}
			}
		}
		switch behaviour {
		case "echo":
			echo()
		case "small":
			c.SetReadLimit(smallLimit)
			echo()
		case "fragments":
			fail(coderWriteParts(ctx, c, websocket.MessageText, thirds([]byte(fragText))...))
			fail(coderWriteParts(ctx, c, websocket.MessageBinary, thirds(pattern(fragBinaryLen))...))
			echo()
		case "ping":
			// Ping needs a concurrent reader, so it runs beside the read loop.
			done := make(chan struct{})
			defer func() { <-done }()
			started := false
			for {
				_, msg, err := c.Read(ctx)
				if err != nil {
					g.events.add(coderClose(path, err))
					if !started {
						close(done)
					}
					return
				}
				if string(msg) == "go" && !started {
					started = true
					go func() {
						defer close(done)
						verdict := "pong-bad "
						if err := c.Ping(ctx); err == nil {
							verdict = "pong-ok "
						}
						var p string
						select {
						case p = <-pongs:
						default:
						}
						fail(c.Write(ctx, websocket.MessageText, []byte(verdict+p)))
					}()
				}
			}
		case "close-by-peer":
			// Close returns nil only when the answer carries the same code.
			if err := c.Close(codeFromPeer, reasonFromPeer); err != nil {
				g.events.add(event{Ev: "closed", Path: path, Detail: err.Error()})
			} else {
				g.events.add(event{Ev: "closed", Path: path, Code: codeFromPeer})
			}
		case "subprotocol":
			fail(c.Write(ctx, websocket.MessageText, []byte("proto:"+c.Subprotocol())))
			readToEnd()
		case "big":
			fail(c.Write(ctx, websocket.MessageBinary, pattern(oversize)))
			readToEnd()
		case "big-fragmented":
			fail(coderWriteParts(ctx, c, websocket.MessageBinary, thirds(pattern(fragBinaryLen))...))
			readToEnd()
		default:
			fail(errors.New("unknown behaviour"))
		}
	})
}

// coderCloser lets cleanup close a coder connection without a handshake.
type coderCloser struct{ c *websocket.Conn }

func (c coderCloser) Close() error { return c.c.CloseNow() }

func coderClient(t *testing.T, url, scenario string) peerReport {
	g := newGoClient()
	ctx, cancel := ctxTimeout()
	defer cancel()
	opts := &websocket.DialOptions{}
	switch scenario {
	case "wss":
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t)}}
	case "subprotocol":
		opts.Subprotocols = []string{proto1, proto2}
	}
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		g.log.add(event{Ev: "error", Detail: err.Error()})
		return g.report()
	}
	defer g.drain()
	defer c.CloseNow()
	c.SetReadLimit(largeLimit)
	if scenario == "too-big-for-peer" {
		c.SetReadLimit(smallLimit)
	}
	g.startReader(func() (bool, []byte, error) {
		typ, msg, err := c.Read(ctx)
		return typ == websocket.MessageText, msg, err
	})
	fail := func(err error) {
		if err != nil {
			g.log.add(event{Ev: "error", Detail: err.Error()})
		}
	}
	// closeWith runs the close handshake and reports the answer, as the reader saw it or, when
	// Close read it first, as Close judged it.
	closeWith := func(code websocket.StatusCode, reason string) {
		err := c.Close(code, reason)
		e := coderClose("", g.untilError())
		if e.Code == 0 {
			// Close itself read the answer: it returns nil when the answer's code matched.
			if err == nil {
				e.Code = int(code)
			} else {
				e.Detail = err.Error()
			}
		}
		g.log.add(e)
	}

	switch scenario {
	case "echo", "wss":
		sizes := binarySizes
		if scenario == "wss" {
			sizes = []int{65536}
		}
		fail(c.Write(ctx, websocket.MessageText, []byte(textMsg)))
		g.expect("text", true, []byte(textMsg))
		for _, n := range sizes {
			fail(c.Write(ctx, websocket.MessageBinary, pattern(n)))
			g.expect(fmt.Sprintf("binary-%d", n), false, pattern(n))
		}
		closeWith(websocket.StatusNormalClosure, "done")
	case "fragments":
		g.expect("recv-fragmented-text", true, []byte(fragText))
		g.expect("recv-fragmented-binary", false, pattern(fragBinaryLen))
		fail(coderWriteParts(ctx, c, websocket.MessageText, thirds([]byte(fragText))...))
		g.expect("echo-fragmented-text", true, []byte(fragText))
		fail(coderWriteParts(ctx, c, websocket.MessageBinary, thirds(pattern(fragBinaryLen))...))
		g.expect("echo-fragmented-binary", false, pattern(fragBinaryLen))
		closeWith(websocket.StatusNormalClosure, "done")
	case "ping":
		// Ping returns nil once a pong with its payload (a counter) has come back.
		err := c.Ping(ctx)
		g.log.check("ping-echo", err == nil, "Ping: %v", err)
		fail(c.Write(ctx, websocket.MessageText, []byte("go")))
		g.expect("pong-ok", true, []byte("pong-ok "+pingFromEcows))
		closeWith(websocket.StatusNormalClosure, "done")
	case "close-by-peer":
		closeWith(codeFromPeer, reasonFromPeer)
	case "close-by-ecows", "close-by-ecows-frames", "invalid-utf8-from-ecows", "too-big-for-peer":
		m := g.next()
		if m.err == nil {
			g.log.add(event{Ev: "received", Detail: fmt.Sprintf("%x", m.data)})
			closeWith(websocket.StatusNormalClosure, "done")
		} else {
			g.log.add(coderClose("", m.err))
		}
	case "subprotocol":
		g.log.add(event{Ev: "proto", Proto: c.Subprotocol()})
		m := g.next()
		g.log.check("subprotocol", m.err == nil && string(m.data) == "proto:"+c.Subprotocol() && c.Subprotocol() == proto2,
			"negotiated %q, server said %q (%v)", c.Subprotocol(), m.data, m.err)
		closeWith(websocket.StatusNormalClosure, "done")
	case "invalid-utf8-from-peer":
		fail(c.Write(ctx, websocket.MessageText, invalidUTF8))
		g.log.add(coderClose("", g.untilError()))
	case "too-big-for-ecows":
		fail(c.Write(ctx, websocket.MessageBinary, pattern(oversize)))
		g.log.add(coderClose("", g.untilError()))
	default:
		fail(fmt.Errorf("unknown scenario %q", scenario))
	}
	return g.report()
}
