package transport

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

type jsonNote struct {
	ID   int               `json:"id"`
	Text string            `json:"text"`
	Tags []string          `json:"tags,omitempty"`
	Meta map[string]string `json:"meta,omitempty"`
}

// jsonPair returns a client and a server Conn over TCP, closed at the end of the test, and a
// context that bounds the test's reads and writes.
func jsonPair(t *testing.T) (client, server *Conn, ctx context.Context) {
	t.Helper()
	wstest.CheckGoroutines(t)
	client, server = connPair(t, false, nil)
	t.Cleanup(func() {
		client.CloseNow()
		server.CloseNow()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return client, server, ctx
}

func TestJSONRoundTrip(t *testing.T) {
	client, server, ctx := jsonPair(t)
	notes := []jsonNote{
		{ID: 1, Text: "hello"},
		{ID: 2, Text: "κόσμε \"quoted\"\n", Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}},
		{},
	}
	hop := func(from, to *Conn, v jsonNote) (got jsonNote) {
		if err := WriteJSON(ctx, from, v); err != nil {
			t.Fatal(err)
		}
		if err := ReadJSON(ctx, to, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, want := range notes {
		// Client to server, and the server's answer back: both roles, both directions.
		got := hop(client, server, want)
		got.ID++
		back := hop(server, client, got)
		want.ID++
		wb, _ := json.Marshal(want)
		bb, _ := json.Marshal(back)
		if string(wb) != string(bb) {
			t.Fatalf("round trip: got %s, want %s", bb, wb)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	tests := []struct {
		name  string
		op    frame.Opcode
		msg   string
		check func(err error) bool
	}{
		{"binary", frame.OpBinary, `{"id":1}`, func(err error) bool {
			var je *JSONError
			return errors.As(err, &je) && je.Opcode == frame.OpBinary && je.Err == nil
		}},
		{"not JSON", frame.OpText, `{"id":`, func(err error) bool { return errors.As(err, &syntax) }},
		{"trailing data", frame.OpText, `{"id":1} {}`, func(err error) bool { return errors.As(err, &syntax) }},
		{"wrong type", frame.OpText, `{"id":"one"}`, func(err error) bool { return errors.As(err, &typ) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server, ctx := jsonPair(t)
			if _, err := client.WriteMessage(ctx, tt.op, []byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			var n jsonNote
			err := ReadJSON(ctx, server, &n)
			var je *JSONError
			if !errors.As(err, &je) || !tt.check(err) {
				t.Fatalf("ReadJSON: %v (%T)", err, err)
			}
			// The message was read whole and the Conn goes on.
			if err := WriteJSON(ctx, client, jsonNote{ID: 7}); err != nil {
				t.Fatal(err)
			}
			if err := ReadJSON(ctx, server, &n); err != nil || n.ID != 7 {
				t.Fatalf("next ReadJSON: %+v, %v", n, err)
			}
		})
	}
	t.Run("unencodable", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		c, p := rawPair(t, Server, nil)
		defer c.CloseNow()
		var ue *json.UnsupportedTypeError
		if err := WriteJSON(t.Context(), c, make(chan int)); !errors.As(err, &ue) {
			t.Fatalf("WriteJSON of a channel: %v, want a *json.UnsupportedTypeError", err)
		}
		if err := WriteJSON(t.Context(), c, 1); err != nil {
			t.Fatal(err)
		}
		if f, err := p.read(); err != nil || string(f.Payload) != "1" {
			t.Fatalf("peer got %q, %v; want only the second message", f.Payload, err)
		}
	})
}
