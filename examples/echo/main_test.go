package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/transport"
)

// dialEcho starts the echo server and returns a connection to it; both end with the test.
func dialEcho(t *testing.T) *transport.Conn {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(echo))
	t.Cleanup(srv.Close)
	return dialtest.Dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
}

func TestEcho(t *testing.T) {
	c := dialEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, m := range []struct {
		op   frame.Opcode
		data string
	}{{frame.OpText, "hello"}, {frame.OpBinary, "\x00\x01\x02"}, {frame.OpText, strings.Repeat("big ", 50_000)}} {
		if _, err := c.WriteMessage(context.Background(), m.op, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		op, got, err := c.ReadMessage(ctx, nil)
		if err != nil || op != m.op || string(got) != m.data {
			t.Fatalf("sent %v of %d bytes, got %v of %d bytes, %v", m.op, len(m.data), op, len(got), err)
		}
	}
	if err := c.Close(frame.CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
}

func TestEchoRefusesPlainHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %s", resp.Status)
	}
}

func TestEchoClosesOnBadText(t *testing.T) {
	c := dialEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.SendFrame(true, frame.OpText, []byte("bad \xff"))
	_, _, err := c.ReadMessage(ctx, nil)
	var ce *transport.CloseError
	if !errors.As(err, &ce) || ce.Code != frame.CloseInvalidPayload {
		t.Fatalf("got %v, want a 1007 close", err)
	}
}
