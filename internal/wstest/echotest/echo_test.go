package echotest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// Echo returns each message with its opcode, ends with the error that ended the connection,
// and closes the Conn.
func TestEcho(t *testing.T) {
	wstest.CheckGoroutines(t)
	cc, sc := wstest.TCPPair(t)
	server := transport.NewConn(sc, transport.Server, transport.Setup{}, nil)
	client := transport.NewConn(cc, transport.Client, transport.Setup{}, nil)
	defer client.CloseNow()
	done := make(chan error, 1)
	go func() { done <- Echo(context.Background(), server) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []struct {
		op frame.Opcode
		p  string
	}{{frame.OpText, "hello"}, {frame.OpBinary, "\x00\x01"}, {frame.OpText, ""}} {
		if _, err := client.WriteMessage(ctx, m.op, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		op, got, err := client.ReadMessage(ctx, nil)
		if err != nil || op != m.op || string(got) != m.p {
			t.Fatalf("echo of %v %q: %v %q, %v", m.op, m.p, op, got, err)
		}
	}
	if err := client.Close(frame.CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ce *transport.CloseError
		if !errors.As(err, &ce) || ce.Code != frame.CloseNormal {
			t.Errorf("Echo returned %v, want the peer's close 1000", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Echo still runs 10 s after the close handshake")
	}
}
