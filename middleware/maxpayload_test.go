package middleware

import (
	"errors"
	"strings"
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

func TestMaxPayloadFrame(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Frames(echo, MaxPayload(10, 0)))
	s.send(true, frame.OpText, strings.Repeat("a", 10))
	s.send(false, frame.OpText, strings.Repeat("b", 10)) // no message cap: fragments add up freely
	s.send(true, frame.OpContinuation, strings.Repeat("c", 10))
	s.client.SendPing([]byte(strings.Repeat("p", 100)))
	for range 3 {
		s.recvText()
	}
	s.send(true, frame.OpBinary, strings.Repeat("d", 11))
	if code, reason := s.expectClose(); code != frame.CloseMessageTooBig || reason != "payload over the size limit" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	if err := s.result(); !errors.Is(err, frame.ErrTooBig) {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestMaxPayloadMessage(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := run(t, Frames(echo, MaxPayload(0, 10)))
	s.send(false, frame.OpText, "12345")
	s.send(true, frame.OpContinuation, "67890")
	s.send(true, frame.OpText, "1234567890") // a new message starts from zero
	for range 3 {
		s.recvText()
	}
	s.send(false, frame.OpBinary, "123456")
	s.client.SendPing(nil)
	s.send(true, frame.OpContinuation, "789012")
	if code, reason := s.expectClose(); code != frame.CloseMessageTooBig || reason != "message over the size limit" {
		t.Fatalf("client got close %d %q", code, reason)
	}
	var pe *frame.ProtocolError
	if err := s.result(); !errors.As(err, &pe) || pe.Code != frame.CloseMessageTooBig {
		t.Fatalf("ServeConn: %v", err)
	}
}

func TestMaxPayloadOff(t *testing.T) {
	h := MaxPayload(0, -1)(echo)
	if _, ok := h.(*maxPayload); ok {
		t.Fatal("no caps, yet the handler is wrapped")
	}
}
