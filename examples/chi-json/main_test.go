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
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

func startApp(t *testing.T) (url string, ws *router.Router) {
	t.Helper()
	ws = router.New()
	srv := httptest.NewServer(newApp(ws, map[string]string{"s3cret": "alice"}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ws.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), ws
}

func dial(t *testing.T, url string, header http.Header) (*transport.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := handshake.Dial(ctx, url, &handshake.DialOptions{Header: header})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, err
}

func TestChatNeedsToken(t *testing.T) {
	url, _ := startApp(t)
	for _, h := range []http.Header{nil, {"Authorization": {"Bearer wrong"}}, {"Authorization": {"s3cret"}}} {
		_, err := dial(t, url+"/rooms/lobby", h)
		var se *handshake.StatusError
		if !errors.As(err, &se) || se.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("header %v: got %v, want 401", h, err)
		}
		if !strings.Contains(string(se.Body), "missing or unknown token") {
			t.Errorf("body %q", se.Body)
		}
	}
}

func TestChat(t *testing.T) {
	url, ws := startApp(t)
	for _, target := range []struct {
		url    string
		header http.Header
	}{
		{url + "/rooms/lobby", http.Header{"Authorization": {"Bearer s3cret"}}},
		{url + "/rooms/lobby?token=s3cret", nil}, // as a browser would
	} {
		c, err := dial(t, target.url, target.header)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := transport.WriteJSON(ctx, c, message{Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		var got reply
		err = transport.ReadJSON(ctx, c, &got)
		cancel()
		if err != nil || got != (reply{Room: "lobby", User: "alice", Text: "hi"}) {
			t.Fatalf("got %+v (%v)", got, err)
		}
		if ws.Len() == 0 {
			t.Error("the router does not track the connection")
		}
		if err := c.Close(frame.CloseNormal, ""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChatRefusesBadJSON(t *testing.T) {
	url, _ := startApp(t)
	c, err := dial(t, url+"/rooms/x", http.Header{"Authorization": {"Bearer s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(context.Background(), frame.OpText, []byte("{not json"))
	_, _, err = c.ReadMessage(context.Background(), nil)
	if code := transport.CloseStatus(err); code != frame.CloseInvalidPayload {
		t.Fatalf("got %v, want a 1007 close", err)
	}
}

func TestChatShutdown(t *testing.T) {
	url, ws := startApp(t)
	c, err := dial(t, url+"/rooms/x", http.Header{"Authorization": {"Bearer s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage(context.Background(), nil)
		got <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := transport.CloseStatus(<-got); code != frame.CloseGoingAway {
		t.Fatalf("got code %d, want 1001", code)
	}
}
