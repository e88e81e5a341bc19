package middleware

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// panicky echoes text messages and panics on "panic".
var panicky = HandlerFunc(func(ctx context.Context, c *transport.Conn, s string) error {
	switch s {
	case "panic":
		panic("boom")
	case "panic error":
		panic(io.ErrUnexpectedEOF)
	}
	return echoText.Serve(ctx, c, s)
})

// One connection's panic closes it with 1011 while another served by the same handler goes on.
func TestRecoverIsolatesPanic(t *testing.T) {
	wstest.CheckGoroutines(t)
	var buf logBuffer
	log := zerolog.New(&buf)
	h := Messages(Text, panicky, Recover(&log))
	bad, good := run(t, h), run(t, h)
	good.send(true, frame.OpText, "before")
	if got := good.recvText(); got != "before" {
		t.Fatalf("echo %q", got)
	}
	bad.send(true, frame.OpText, "panic")
	if code, reason := bad.expectClose(); code != frame.CloseInternalError || reason != "internal error" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	if err := bad.result(); err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("ServeConn: %v", err)
	}
	good.send(true, frame.OpText, "after")
	if got := good.recvText(); got != "after" {
		t.Fatalf("echo %q", got)
	}
	good.closeClient()
	evs := buf.events(t, "websocket handler panic")
	if len(evs) != 1 {
		t.Fatalf("%d panic events", len(evs))
	}
	ev := evs[0]
	stack, _ := ev["stack"].(string)
	if ev["level"] != "error" || ev["panic"] != "boom" || !strings.Contains(stack, "recover_test.go") || ev["remote"] == "" {
		t.Fatalf("panic event %v", ev)
	}
}

func TestRecoverPanicWithError(t *testing.T) {
	var buf logBuffer
	log := zerolog.New(&buf)
	s := runCtx(t, log.WithContext(context.Background()), Messages(Text, panicky, Recover(nil)))
	s.send(true, frame.OpText, "panic error")
	s.expectClose()
	if err := s.result(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ServeConn: %v", err)
	}
	if len(buf.events(t, "websocket handler panic")) != 1 {
		t.Fatal("the panic was not logged to the context's logger")
	}
}
