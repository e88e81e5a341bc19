package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/transport"
)

func dial(t *testing.T, path string) *transport.Conn {
	t.Helper()
	return dialCompressed(t, path, nil, nil)
}

// dialCompressed starts the echo server with compression as -compress gives it (server) and
// dials it with the client's offer (client); nil is off.
func dialCompressed(t *testing.T, path string, server, client *transport.CompressionOptions) *transport.Conn {
	t.Helper()
	srv := httptest.NewServer(echo(serverOptions(server)))
	t.Cleanup(srv.Close)
	return dialtest.Dial(t, "ws"+strings.TrimPrefix(srv.URL, "http")+path, &handshake.DialOptions{
		Options: transport.Options{MaxPayloadLen: maxLen, MaxMessageLen: maxLen, Compression: client},
	})
}

func recv(t *testing.T, c *transport.Conn) frame.Frame {
	t.Helper()
	f, err := c.RecvFrame(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEchoesMessages(t *testing.T) {
	c := dial(t, "/any/path?case=1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := strings.Repeat("é", 1<<20) // 2 MiB, over the transport defaults
	for _, m := range []struct {
		op   frame.Opcode
		data string
	}{{frame.OpText, "hello"}, {frame.OpBinary, "\x00\xff"}, {frame.OpText, ""}, {frame.OpText, big}} {
		c.WriteMessage(context.Background(), m.op, []byte(m.data))
		op, got, err := c.ReadMessage(ctx, nil)
		if err != nil || op != m.op || string(got) != m.data {
			t.Fatalf("sent %v of %d bytes, got %v of %d bytes, %v", m.op, len(m.data), op, len(got), err)
		}
	}
}

func TestEchoesFragmentedMessages(t *testing.T) {
	c := dial(t, "/")
	// Fragments with a ping between them, and a character split across them.
	c.SendFrame(false, frame.OpText, []byte("fr\xc3"))
	c.SendPing([]byte("in between"))
	c.SendFrame(false, frame.OpContinuation, []byte("\xa9ag"))
	c.SendFrame(true, frame.OpContinuation, []byte("ments"))
	if f := recv(t, c); f.Opcode != frame.OpPong || string(f.Payload) != "in between" {
		t.Fatalf("got %v %q, want the pong first", f.Opcode, f.Payload)
	}
	if f := recv(t, c); f.Opcode != frame.OpText || !f.Fin || string(f.Payload) != "fr\u00e9agments" {
		t.Fatalf("got %+v", f)
	}
	c.SendFrame(false, frame.OpBinary, []byte{1})
	c.SendFrame(true, frame.OpContinuation, []byte{2})
	if f := recv(t, c); f.Opcode != frame.OpBinary || string(f.Payload) != "\x01\x02" {
		t.Fatalf("got %+v", f)
	}
}

func TestProtocolErrorsClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(c *transport.Conn)
		code frame.CloseCode
	}{
		{"invalid UTF-8", func(c *transport.Conn) { c.SendFrame(true, frame.OpText, []byte("\xce\xba\xe1\xbd")) }, frame.CloseInvalidPayload},
		{"close", func(c *transport.Conn) { c.SendClose(frame.CloseNormal, "done") }, frame.CloseNormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, "/")
			tc.send(c)
			var f frame.Frame
			for f = recv(t, c); f.Opcode != frame.OpClose; f = recv(t, c) {
			}
			if f.CloseCode() != tc.code {
				t.Fatalf("closed with %v, want %v", f.CloseCode(), tc.code)
			}
		})
	}
}

// TestCompressedEcho runs the server in each -compress mode against client offers with and
// without context takeover: the agreed extension is the one the mode stands for, and
// messages come back whole, compressed (RSV1) exactly when permessage-deflate was agreed.
func TestCompressedEcho(t *testing.T) {
	wstest.CheckGoroutines(t)
	const both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, tc := range []struct {
		server, client string
		ext            string
	}{
		{"off", "takeover", ""},
		{"on", "on", both},
		{"on", "takeover", both},
		{"takeover", "on", both},
		{"takeover", "takeover", "permessage-deflate"},
	} {
		t.Run(tc.server+"/"+tc.client, func(t *testing.T) {
			so, _ := compressflag.Options(tc.server)
			co, _ := compressflag.Options(tc.client)
			c := dialCompressed(t, "/", so, co)
			if c.Extensions() != tc.ext {
				t.Fatalf("extensions %q, want %q", c.Extensions(), tc.ext)
			}
			for i := range 3 {
				msg := []byte(strings.Repeat("compress me, message "+string(rune('a'+i))+" ", 100))
				op := []frame.Opcode{frame.OpText, frame.OpBinary}[i%2]
				if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
					t.Fatal(err)
				}
				f := recv(t, c)
				if !f.Fin || f.Opcode != op || string(f.Payload) != string(msg) || f.Rsv1 != (tc.ext != "") {
					t.Fatalf("echo %d: fin %v %v rsv1 %v %d bytes; want the %d-byte %v message, compressed: %v",
						i, f.Fin, f.Opcode, f.Rsv1, len(f.Payload), len(msg), op, tc.ext != "")
				}
			}
			if err := c.Close(frame.CloseNormal, ""); err != nil {
				t.Error(err)
			}
		})
	}
}
