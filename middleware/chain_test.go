package middleware

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// The built-in middleware together, in the order the package documentation recommends.
func TestBuiltinsTogether(t *testing.T) {
	wstest.CheckGoroutines(t)
	var buf logBuffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	rec := &recorder{}
	h := HandlerFunc(func(ctx context.Context, c *transport.Conn, f frame.Frame) error {
		rec.add(f.Opcode.String() + ":" + string(f.Payload))
		if string(f.Payload) == "panic" {
			panic("handler bug")
		}
		return echo.Serve(ctx, c, f)
	})
	mws := []Layer{
		Recover(&log),
		Logger(&log),
		AutoPong(&AutoPongOptions{Interval: time.Second}), // on, but never due during the test
		RateLimit(RateLimitOptions{Rate: 1000, Burst: 100, OnExceed: ExceedClose}),
		MaxPayload(16, 32),
	}

	s := run(t, Frames(h, mws...))
	s.client.SendPing([]byte("hi"))
	if f := s.recv(); f.Opcode != frame.OpPong || string(f.Payload) != "hi" {
		t.Fatalf("got %v %q, want the pong", f.Opcode, f.Payload)
	}
	s.send(true, frame.OpText, "one")
	if got := s.recvText(); got != "one" {
		t.Fatalf("echo %q", got)
	}
	s.send(false, frame.OpText, strings.Repeat("x", 16))
	s.send(false, frame.OpContinuation, strings.Repeat("y", 16))
	s.send(true, frame.OpContinuation, "z") // 33 bytes: over the message cap
	if code, _ := s.expectClose(); code != frame.CloseMessageTooBig {
		t.Fatalf("client got close %d", code)
	}
	s.result()
	if got, want := rec.String(), "text:one text:"+strings.Repeat("x", 16)+" continuation:"+strings.Repeat("y", 16); got != want {
		t.Fatalf("handler saw %q\nwant %q", got, want)
	}
	closes := buf.events(t, "websocket close")
	if len(closes) != 1 || closes[0]["close_code"] != 1009.0 {
		t.Fatalf("close events %v", closes)
	}
	// The Logger sits outside AutoPong: it sees the ping, which the handler never does.
	if evs := buf.events(t, "websocket frame"); len(evs) < 5 || evs[0]["opcode"] != "ping" {
		t.Fatalf("frame events %v", evs)
	}

	// Recover, outermost, turns a panic anywhere inside into 1011, and the Logger still logs.
	s = run(t, Frames(h, mws...))
	s.send(true, frame.OpText, "panic")
	if code, _ := s.expectClose(); code != frame.CloseInternalError {
		t.Fatalf("client got close %d", code)
	}
	s.result()
	closes = buf.events(t, "websocket close")
	if len(closes) != 2 || closes[1]["close_code"] != 1011.0 || !strings.Contains(closes[1]["error"].(string), "handler bug") {
		t.Fatalf("close events %v", closes)
	}
	if len(buf.events(t, "websocket handler panic")) != 1 {
		t.Fatal("panic not logged")
	}
}
