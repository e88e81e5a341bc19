package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/echotest"
)

// closingServer closes its first connections with the codes given, one each, and echoes on
// the connections after them.
func closingServer(t *testing.T, codes ...frame.CloseCode) string {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		if i := int(n.Add(1)) - 1; i < len(codes) {
			c.Close(codes[i], "test")
			return
		}
		echotest.Echo(context.Background(), c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestDialReconnect(t *testing.T) {
	wstest.CheckGoroutines(t)
	url := closingServer(t, frame.CloseServiceRestart, frame.CloseGoingAway)
	in, stdin := io.Pipe()
	defer stdin.Close()
	var out wstest.Buffer
	done := make(chan error, 1)
	go func() { done <- dialReconnect(context.Background(), url, nil, in, &out) }()
	waitFor(t, &out, "(going away): test; reconnecting in")
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "* connected to") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	io.WriteString(stdin, "hello\n")
	waitFor(t, &out, "< text: hello")
	stdin.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dial -reconnect: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dial -reconnect did not end with its input")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"* connected to " + url,
		"< close: 1012 (service restart) test",
		"* disconnected after ",
		"* connected to " + url,
		"< close: 1001 (going away) test",
		"* disconnected after ",
		"* connected to " + url,
		"< text: hello",
		"< close: 1000 (normal closure)",
	}
	if len(lines) != len(want) {
		t.Fatalf("got\n%s", out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d: %q, want %q...; all:\n%s", i, lines[i], w, out.String())
		}
	}
}

func TestDialReconnectStops(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		want string
	}{
		{"final close code", func(t *testing.T) string { return closingServer(t, frame.ClosePolicyViolation) },
			"server closed the connection with 1008 (policy violation) test"},
		{"refused handshake", func(t *testing.T) string {
			srv := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(srv.Close)
			return "ws" + strings.TrimPrefix(srv.URL, "http")
		}, "handshake failed: websocket: server answered 404 Not Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			in, stdin := io.Pipe()
			defer stdin.Close()
			var stdout, stderr wstest.Buffer
			code := run(context.Background(), []string{"dial", "-reconnect", tc.url(t)}, in, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			if strings.Contains(stdout.String(), "reconnecting") || strings.Contains(stdout.String(), "retrying") {
				t.Fatalf("retried a final error:\n%s", stdout.String())
			}
		})
	}
}
