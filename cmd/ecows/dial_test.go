package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// runDialTest runs dial against url with input as its standard input and returns its output
// and error.
func runDialTest(t *testing.T, url, input string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out wstest.Buffer
	err := dial(ctx, url, nil, strings.NewReader(input), &out)
	return out.String(), err
}

func TestDialEcho(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	out, err := runDialTest(t, s.wsURL(), "hello\n//slash\n\nlast line without newline")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "* connected to " + s.wsURL() + "\n" +
		"< text: hello\n" +
		"< text: /slash\n" +
		"< text: \n" +
		"< text: last line without newline\n" +
		"< close: 1000 (normal closure)\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

func TestDialPing(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	out, err := runDialTest(t, s.wsURL(), "/ping abc\n/ping\n")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "< pong: abc\n< pong\n") {
		t.Fatalf("no pongs in\n%s", out)
	}
}

func TestDialClose(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	out, err := runDialTest(t, s.wsURL(), "/close 4000 bye\nnot sent\n")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasSuffix(out, "< close: 4000\n") { // the server echoes the code (RFC 6455 5.5.1)
		t.Fatalf("got\n%s", out)
	}
	s.stop()
	if log := s.log.String(); !strings.Contains(log, "close_code=4000") {
		t.Errorf("the server did not log the 4000 close:\n%s", log)
	}
}

func TestDialBadCommands(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	out, err := runDialTest(t, s.wsURL(), "/nope\n/close 1005\n/close x\n/ping "+strings.Repeat("p", 126)+"\n")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"! unknown command /nope", `! close not sent: "1005"`, `! close not sent: "x"`, "! ping not sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "< close: 1000 (normal closure)\n") {
		t.Errorf("did not close normally:\n%s", out)
	}
}

// wsServer starts a server that upgrades each request with opts and hands the Conn to serve,
// closing it once serve returns. It returns the server's ws:// URL; the server stops when the
// test ends.
func wsServer(t *testing.T, opts *handshake.ServerOptions, serve func(c *transport.Conn, r *http.Request)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		serve(c, r)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestDialFrames(t *testing.T) {
	wstest.CheckGoroutines(t)
	// A server that sends one of each kind of frame, then closes with a reason.
	url := wsServer(t, nil, func(c *transport.Conn, _ *http.Request) {
		c.SendBinary([]byte{1, 2, 3})
		c.SendBinary(make([]byte, 100))
		c.SendFrame(false, frame.OpText, []byte("hel"))
		c.SendFrame(true, frame.OpContinuation, []byte("lo"))
		c.SendText([]byte("two\nlines"))
		c.SendPing([]byte("data"))
		f, err := c.RecvFrame(5 * time.Second)
		if err != nil || f.Opcode != frame.OpPong || string(f.Payload) != "data" {
			c.Close(frame.CloseProtocolError, "no pong")
			return
		}
		c.SendPong([]byte{0xff})
		c.Close(frame.CloseNormal, "bye")
	})
	in, stdin := io.Pipe() // stays open: the server ends the session
	defer stdin.Close()
	var out wstest.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dial(ctx, url, nil, in, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := "* connected to " + url + "\n" +
		"< binary: 3 bytes 010203\n" +
		"< binary: 100 bytes " + strings.Repeat("00", hexShown) + "...\n" +
		"< text (fragment): hel\n" +
		"< continuation: lo\n" +
		"< text: \"two\\nlines\"\n" +
		"< ping: data\n" +
		"< pong: 1 bytes ff\n" +
		"< close: 1000 (normal closure) bye\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestDialServerShutdown(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	in, stdin := io.Pipe()
	defer stdin.Close()
	var out wstest.Buffer
	done := make(chan error, 1)
	go func() { done <- dial(context.Background(), s.wsURL(), nil, in, &out) }()
	waitFor(t, &out, "* connected")
	s.stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a 1001 from the server is a clean end, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dial did not end")
	}
	if !strings.Contains(out.String(), "< close: 1001 (going away)") {
		t.Fatalf("got\n%s", out.String())
	}
}

func TestDialServerError(t *testing.T) {
	wstest.CheckGoroutines(t)
	url := wsServer(t, nil, func(c *transport.Conn, _ *http.Request) {
		c.Close(frame.ClosePolicyViolation, "go away")
	})
	in, stdin := io.Pipe()
	defer stdin.Close()
	var out wstest.Buffer
	err := dial(context.Background(), url, nil, in, &out)
	if err == nil || !strings.Contains(err.Error(), "server closed the connection with 1008 (policy violation) go away") {
		t.Fatalf("got %v\n%s", err, out.String())
	}
}

func TestDialHandshakeFailure(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	var stdout, stderr wstest.Buffer
	url := strings.Replace(s.wsURL(), "/ws", "/nowhere", 1)
	code := run(context.Background(), []string{"dial", url}, strings.NewReader("hi\n"), &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), `handshake failed: websocket: server answered 404 Not Found instead of 101 Switching Protocols: "404 page not found"`) {
		t.Fatalf("stderr: %s", stderr.String())
	}
	if stdout.String() != "" {
		t.Errorf("stdout: %s", stdout.String())
	}

	stderr = wstest.Buffer{}
	code = run(context.Background(), []string{"dial", "-timeout", "2s", "ws://127.0.0.1:1/"}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "handshake failed") {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
}

func TestDialFlags(t *testing.T) {
	wstest.CheckGoroutines(t)
	opts := &handshake.ServerOptions{Subprotocols: []string{"chat"}, OriginPatterns: []string{"example.com"}}
	url := wsServer(t, opts, func(c *transport.Conn, r *http.Request) {
		c.SendText([]byte(r.Header.Get("X-Token") + " " + r.Header.Get("Origin")))
		c.Close(frame.CloseNormal, "")
	})
	var stdout, stderr wstest.Buffer
	code := run(context.Background(), []string{"dial", url, "-H", "X-Token: s3cret", "-subprotocol", "x, chat", "-origin", "http://example.com"},
		strings.NewReader(""), &stdout, &stderr)
	want := "* connected to " + url + " (subprotocol chat)\n< text: s3cret http://example.com\n< close: 1000 (normal closure)\n"
	if code != 0 || stdout.String() != want {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}

func TestDialInterrupted(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	in, stdin := io.Pipe()
	defer stdin.Close()
	var out wstest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dial(ctx, s.wsURL(), nil, in, &out) }()
	waitFor(t, &out, "* connected")
	cancel() // as SIGINT does
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dial did not end")
	}
	if !strings.HasSuffix(out.String(), "< close: 1000 (normal closure)\n") {
		t.Fatalf("got\n%s", out.String())
	}
}
