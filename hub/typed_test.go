package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub/hubtest"
	"github.com/ecows/ecows/transport"
)

type chatLine struct {
	User string   `json:"user"`
	Text string   `json:"text"`
	Tags []string `json:"tags"`
}

// A typed value broadcast to a room reaches every member as one text message, encoded once,
// and decodes at each member to the value sent; members of other rooms get nothing.
func TestBroadcastJSON(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	t.Cleanup(func() { // registered first, so it runs after the hub and the pipes are closed
		deadline := time.Now().Add(wait)
		for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			t.Errorf("%d goroutines before, %d after", goroutines, n)
		}
	})
	h := newHub(t, nil)
	var clients []*transport.Conn
	for range 4 {
		client, server := hubtest.Pipe(t, nil)
		if err := h.Join(server, "room"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, client)
	}
	other, otherServer := hubtest.Pipe(t, nil)
	h.Join(otherServer, "elsewhere")
	sent := chatLine{User: "ann", Text: "héllo <b>", Tags: []string{"a", "b"}}
	before := h.Stats().Encoded
	if err := h.BroadcastJSON("room", sent); err != nil {
		t.Fatal(err)
	}
	if n := h.Stats().Encoded - before; n != 1 {
		t.Fatalf("encoded %d frames for one broadcast", n)
	}
	for i, c := range clients {
		op, msg, err := c.ReadMessage(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var got chatLine
		if err := json.Unmarshal(msg, &got); err != nil || op != frame.OpText {
			t.Fatalf("member %d: %v %q: %v", i, op, msg, err)
		}
		if got.User != sent.User || got.Text != sent.Text || len(got.Tags) != 2 || got.Tags[1] != "b" {
			t.Fatalf("member %d got %+v, want %+v", i, got, sent)
		}
	}
	if got, err := recvWithin(other, 50*time.Millisecond); err == nil {
		t.Fatalf("a member of another room got %q", got)
	}
}

// BroadcastText sends text; what cannot be sent is refused before it reaches anyone.
func TestBroadcastTextAndErrors(t *testing.T) {
	h := newHub(t, nil)
	client, server := hubtest.Pipe(t, nil)
	h.Join(server, "room")
	if err := h.BroadcastText("room", "plain text"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, client); got != "plain text" {
		t.Fatalf("got %q", got)
	}
	before := h.Stats().Encoded
	var ue *transport.UsageError
	if err := h.BroadcastText("room", "\xff"); !errors.As(err, &ue) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	var je *json.UnsupportedTypeError
	if err := h.BroadcastJSON("room", make(chan int)); !errors.As(err, &je) {
		t.Fatalf("a value JSON cannot encode: %v", err)
	}
	if err := h.BroadcastJSON("room", 42); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, client); got != "42" {
		t.Fatalf("got %q after the refused broadcasts", got)
	}
	if n := h.Stats().Encoded - before; n != 1 {
		t.Fatalf("encoded %d frames, want only the last", n)
	}
}
