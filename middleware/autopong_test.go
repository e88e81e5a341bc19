package middleware

import (
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

func TestAutoPong(t *testing.T) {
	wstest.CheckGoroutines(t)
	rec := &recorder{}
	s := run(t, Frames(rec.frames(), AutoPong(nil)))
	s.send(false, frame.OpText, "a")
	s.client.SendPing([]byte("payload 1"))
	s.send(true, frame.OpContinuation, "b")
	s.client.SendPing(nil)
	s.client.SendPong([]byte("unsolicited"))
	for _, want := range []string{"payload 1", ""} {
		if f := s.recv(); f.Opcode != frame.OpPong || string(f.Payload) != want {
			t.Fatalf("got %v %q, want a pong with %q", f.Opcode, f.Payload, want)
		}
	}
	s.closeClient()
	if got, want := rec.String(), "text:a continuation:b close:\x03\xe8done"; got != want {
		t.Fatalf("handler saw %q, want %q", got, want)
	}
}

// Without keepalive, AutoPong adds no hooks, and so no goroutine.
func TestAutoPongWithoutKeepalive(t *testing.T) {
	h := AutoPong(&AutoPongOptions{})(echo)
	if _, ok := h.(Opener); ok {
		t.Fatalf("%T has an Open hook", h)
	}
}
