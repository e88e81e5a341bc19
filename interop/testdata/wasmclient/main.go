//go:build js && wasm

// Command wasmclient is the WebAssembly program TestWASMClient loads in headless Chromium: it
// dials the test's ecows server with handshake.Dial, which in a browser uses the browser's
// WebSocket, exchanges text and binary messages, and posts what it found to /result.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"syscall/js"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

var checks []check

func report(name string, ok bool, format string, args ...any) {
	checks = append(checks, check{name, ok, fmt.Sprintf(format, args...)})
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func main() {
	host := js.Global().Get("location").Get("host").String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run(ctx, "ws://"+host)
	body, _ := json.Marshal(checks)
	resp, err := http.Post("/result", "application/json", bytes.NewReader(body))
	if err == nil {
		resp.Body.Close()
	}
}

func run(ctx context.Context, base string) {
	c, resp, err := handshake.Dial(ctx, base+"/ws/echo", &handshake.DialOptions{Subprotocols: []string{"ecows.wasm"}})
	if err != nil {
		report("dial", false, "%v", err)
		return
	}
	report("dial", resp.StatusCode == 101 && c.Subprotocol() == "ecows.wasm", "status %d, subprotocol %q", resp.StatusCode, c.Subprotocol())

	echo := func(name string, op frame.Opcode, p []byte) {
		if _, err := c.WriteMessage(ctx, op, p); err != nil {
			report(name, false, "write: %v", err)
			return
		}
		gotOp, got, err := c.ReadMessage(ctx, nil)
		report(name, err == nil && gotOp == op && bytes.Equal(got, p), "got %v %d bytes, %v; want %v %d bytes", gotOp, len(got), err, op, len(p))
	}
	echo("text", frame.OpText, []byte("héllo wörld ✓ 日本語 🎉 — ecows"))
	echo("text-empty", frame.OpText, nil)
	for _, n := range []int{0, 125, 65536, 1 << 20} {
		echo(fmt.Sprintf("binary-%d", n), frame.OpBinary, pattern(n))
	}

	// A message written in pieces goes to the browser whole.
	w, err := c.NextWriter(ctx, frame.OpBinary)
	if err == nil {
		want := pattern(100000)
		for p := want; len(p) > 0; p = p[min(len(p), 30000):] {
			w.Write(p[:min(len(p), 30000)])
		}
		err = w.Close()
		_, got, rerr := c.ReadMessage(ctx, nil)
		report("next-writer", err == nil && rerr == nil && bytes.Equal(got, want), "%v %v, %d bytes", err, rerr, len(got))
	} else {
		report("next-writer", false, "%v", err)
	}

	err = c.Close(frame.CloseNormal, "done")
	report("close-by-client", err == nil, "%v", err)

	// The server closes with its own code and reason.
	c2, _, err := handshake.Dial(ctx, base+"/ws/close", nil)
	if err != nil {
		report("close-by-server", false, "dial: %v", err)
	} else {
		_, _, err = c2.ReadMessage(ctx, nil)
		var ce *transport.CloseError
		report("close-by-server", errors.As(err, &ce) && ce.Code == 4000 && ce.Reason == "bye", "%v", err)
	}

	// What a browser cannot do fails with ErrBrowser.
	_, _, err = handshake.Dial(ctx, base+"/ws/echo", &handshake.DialOptions{Header: http.Header{"X-Token": {"t"}}})
	report("header-refused", errors.Is(err, handshake.ErrBrowser) && errors.Is(err, handshake.ErrDialOptions), "%v", err)
	c3, _, err := handshake.Dial(ctx, base+"/ws/echo", nil)
	if err != nil {
		report("ping-refused", false, "dial: %v", err)
		return
	}
	_, err = c3.SendPing([]byte("x"))
	report("ping-refused", errors.Is(err, handshake.ErrBrowser), "%v", err)
	c3.CloseNow()

	_, _, err = handshake.Dial(ctx, "ws://127.0.0.1:1/nothing", &handshake.DialOptions{Timeout: 10 * time.Second})
	report("unreachable", errors.Is(err, handshake.ErrBrowserDial), "%v", err)
}
