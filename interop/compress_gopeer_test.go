package interop

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
)

// bombSize is what a peer sends in the compress-bomb case: zeros, which deflate to about 1 KiB.
const bombSize = 1 << 20

// ---- gorilla ----

func TestCompressGorilla(t *testing.T) {
	s := startGoServer(t, func(g *goServer, w http.ResponseWriter, r *http.Request, behaviour string) {
		up := websocket.Upgrader{EnableCompression: true, CheckOrigin: func(*http.Request) bool { return true }}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer g.track(c)()
		defer c.Close()
		c.EnableWriteCompression(true)
		c.SetReadLimit(largeLimit)
		c.SetReadDeadline(time.Now().Add(scenarioTimeout))
		if behaviour == "compress-bomb" {
			c.WriteMessage(websocket.BinaryMessage, make([]byte, bombSize))
		}
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, p); err != nil {
				return
			}
		}
	})
	t.Run("EcowsClientToPeerServer", func(t *testing.T) {
		runEcowsCompressClient(t, s.url, []string{"/compress"}, "/compress-bomb")
	})
	t.Run("PeerClientToEcowsServer", func(t *testing.T) {
		runPeerCompressClient(t, gorillaCompressClient)
	})
}

func gorillaCompressClient(t *testing.T, url, scenario string) peerReport {
	l := newEventLog()
	d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: scenarioTimeout}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		l.add(event{Ev: "error", Detail: err.Error()})
		return peerReport(l.all())
	}
	defer c.Close()
	c.EnableWriteCompression(true)
	c.SetReadLimit(largeLimit)
	c.SetReadDeadline(time.Now().Add(scenarioTimeout))
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	l.add(event{Ev: "proto", Detail: ext})
	l.check("compress-negotiated", strings.Contains(ext, "permessage-deflate"), "answer %q", ext)
	toEnd := func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				l.add(gorillaClose("", err))
				return
			}
		}
	}
	switch scenario {
	case "compress":
		ok, detail := true, ""
		for range 2 {
			for _, m := range compressMessages() {
				if err := c.WriteMessage(int(m.op), m.p); err != nil {
					ok, detail = false, err.Error()
					break
				}
				typ, p, err := c.ReadMessage()
				if err != nil || typ != int(m.op) || !bytes.Equal(p, m.p) {
					ok, detail = false, "echo differs or failed: "+errString(err)
					break
				}
			}
		}
		l.check("compress-echo", ok, "%s", detail)
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "done"), time.Now().Add(time.Second))
		toEnd()
	case "compress-bomb":
		c.WriteMessage(websocket.BinaryMessage, make([]byte, bombSize))
		toEnd()
	}
	l.add(event{Ev: "done"})
	return peerReport(l.all())
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// ---- coder ----

func TestCompressCoder(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode coder.CompressionMode
	}{{"no-context-takeover", coder.CompressionNoContextTakeover}, {"context-takeover", coder.CompressionContextTakeover}} {
		t.Run(mode.name, func(t *testing.T) {
			s := startGoServer(t, func(g *goServer, w http.ResponseWriter, r *http.Request, behaviour string) {
				c, err := coder.Accept(w, r, &coder.AcceptOptions{
					InsecureSkipVerify: true, CompressionMode: mode.mode, CompressionThreshold: 1,
				})
				if err != nil {
					return
				}
				defer g.track(coderCloser{c})()
				defer c.CloseNow()
				c.SetReadLimit(largeLimit)
				ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
				defer cancel()
				if behaviour == "compress-bomb" {
					c.Write(ctx, coder.MessageBinary, make([]byte, bombSize))
				}
				for {
					typ, p, err := c.Read(ctx)
					if err != nil {
						return
					}
					if err := c.Write(ctx, typ, p); err != nil {
						return
					}
				}
			})
			t.Run("EcowsClientToPeerServer", func(t *testing.T) {
				runEcowsCompressClient(t, s.url, []string{"/compress"}, "/compress-bomb")
			})
			t.Run("PeerClientToEcowsServer", func(t *testing.T) {
				runPeerCompressClient(t, func(t *testing.T, url, scenario string) peerReport {
					return coderCompressClient(t, url, scenario, mode.mode)
				})
			})
		})
	}
}

func coderCompressClient(t *testing.T, url, scenario string, mode coder.CompressionMode) peerReport {
	l := newEventLog()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{CompressionMode: mode, CompressionThreshold: 1})
	if err != nil {
		l.add(event{Ev: "error", Detail: err.Error()})
		return peerReport(l.all())
	}
	defer c.CloseNow()
	c.SetReadLimit(largeLimit)
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	l.add(event{Ev: "proto", Detail: ext})
	l.check("compress-negotiated", strings.Contains(ext, "permessage-deflate"), "answer %q", ext)
	switch scenario {
	case "compress":
		ok, detail := true, ""
		for range 2 {
			for _, m := range compressMessages() {
				if err := c.Write(ctx, coder.MessageType(m.op), m.p); err != nil {
					ok, detail = false, err.Error()
					break
				}
				typ, p, err := c.Read(ctx)
				if err != nil || typ != coder.MessageType(m.op) || !bytes.Equal(p, m.p) {
					ok, detail = false, "echo differs or failed: "+errString(err)
					break
				}
			}
		}
		l.check("compress-echo", ok, "%s", detail)
		// Close waits for ecows' answer; it returns nil when the code matched.
		if err := c.Close(1000, "done"); err == nil {
			l.add(event{Ev: "closed", Code: 1000})
		} else {
			l.add(coderClose("", err))
		}
	case "compress-bomb":
		c.Write(ctx, coder.MessageBinary, make([]byte, bombSize))
		_, _, err := c.Read(ctx)
		l.add(coderClose("", err))
	}
	l.add(event{Ev: "done"})
	return peerReport(l.all())
}

// ---- Node.js ws ----

// wsCompressServers are the paths of peers/ws_peer.js's compress servers: perMessageDeflate
// true (ws' defaults), both no_context_takeover, and both max_window_bits 10.
var wsCompressServers = []string{"/compress/default", "/compress/no-context-takeover", "/compress/window-bits-10"}

func TestCompressNodeWS(t *testing.T) {
	requireNodeWS(t)
	setupCert(t)
	t.Run("EcowsClientToPeerServer", func(t *testing.T) {
		s := startServerProc(t, nil, "node", "peers/ws_peer.js", "server", certFile, keyFile)
		agreed := runEcowsCompressClient(t, s.url, wsCompressServers, "/compress-bomb/default")
		checkAgreed(t, agreed, map[string]string{
			"/compress/default/no-takeover":             "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
			"/compress/default/takeover":                "permessage-deflate",
			"/compress/no-context-takeover/takeover":    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
			"/compress/window-bits-10/takeover":         "permessage-deflate; client_max_window_bits=10; server_max_window_bits=10",
			"/compress/window-bits-10/no-takeover":      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10; server_max_window_bits=10",
			"/compress/no-context-takeover/no-takeover": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		})
	})
	t.Run("PeerClientToEcowsServer", func(t *testing.T) {
		runPeerCompressClient(t, func(t *testing.T, url, scenario string) peerReport {
			return runClientProc(t, nil, "node", "peers/ws_peer.js", "client", url, scenario, certFile)
		})
	})
}

// checkAgreed compares the extensions ecows agreed on, path/mode by path/mode, with want; a
// key missing from want is only logged.
func checkAgreed(t *testing.T, agreed, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got, ok := agreed[k]; ok && got != w {
			t.Errorf("%s: agreed on %q, want %q", k, got, w)
		}
	}
}

// ---- Python websockets ----

func TestCompressPythonWebsockets(t *testing.T) {
	requirePythonWebsockets(t)
	setupCert(t)
	env := []string{"PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8"}
	t.Run("EcowsClientToPeerServer", func(t *testing.T) {
		s := startServerProc(t, env, python, "peers/websockets_peer.py", "server", certFile, keyFile)
		agreed := runEcowsCompressClient(t, s.url, []string{"/compress"}, "/compress-bomb")
		checkAgreed(t, agreed, map[string]string{
			"/compress/takeover":    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
			"/compress/no-takeover": "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12",
		})
	})
	t.Run("PeerClientToEcowsServer", func(t *testing.T) {
		runPeerCompressClient(t, func(t *testing.T, url, scenario string) peerReport {
			return runClientProc(t, env, python, "peers/websockets_peer.py", "client", url, scenario, certFile)
		})
	})
}
