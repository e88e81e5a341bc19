package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/transport"
)

// testServer is an in-process "ecows serve" on a free port.
type testServer struct {
	*server
	log  *wstest.Buffer // its log
	stop func()         // shuts it down and waits for run to return
}

// startServe starts serve with cfg (the zero value's fields take the command's defaults) and
// stops it when the test ends.
func startServe(t *testing.T, cfg serveConfig) *testServer {
	t.Helper()
	logs := &wstest.Buffer{}
	cfg.addr = "127.0.0.1:0"
	if cfg.path == "" {
		cfg.path = "/ws"
	}
	if cfg.maxPayload == 0 {
		cfg.maxPayload = 1 << 20
	}
	cfg.log = zerolog.New(zerolog.ConsoleWriter{Out: logs, NoColor: true}).Level(zerolog.InfoLevel)
	s, err := listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	var once sync.Once
	ts := &testServer{server: s, log: logs}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(shutdownTimeout + 2*time.Second):
				t.Errorf("serve did not stop")
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// waitFor waits until b holds want.
func waitFor(t *testing.T, b *wstest.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readMessage(t *testing.T, c *transport.Conn) (frame.Opcode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	op, msg, err := c.ReadMessage(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return op, string(msg)
}

func TestServeEchoesMessages(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	c := dialtest.Dial(t, s.wsURL(), nil)

	c.WriteMessage(context.Background(), frame.OpText, []byte("hello"))
	if op, msg := readMessage(t, c); op != frame.OpText || msg != "hello" {
		t.Fatalf("got %v %q", op, msg)
	}
	c.WriteMessage(context.Background(), frame.OpBinary, []byte{1, 2, 3})
	if op, msg := readMessage(t, c); op != frame.OpBinary || msg != "\x01\x02\x03" {
		t.Fatalf("got %v %q", op, msg)
	}
	// A fragmented text message with a ping in the middle and a character split across
	// fragments comes back whole, and the ping is answered.
	pongs := 0
	c.SendFrame(false, frame.OpText, []byte("h\xc3"))
	c.SendPing([]byte("p"))
	c.SendFrame(true, frame.OpContinuation, []byte("\xa9llo"))
	for {
		f, err := c.RecvFrame(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Opcode == frame.OpPong {
			pongs++
			continue
		}
		if f.Opcode != frame.OpText || f.Fin || string(f.Payload) != "h\xc3" {
			t.Fatalf("first fragment: %+v", f)
		}
		break
	}
	f, err := c.RecvFrame(5 * time.Second)
	if err == nil && f.Opcode == frame.OpPong {
		pongs++
		f, err = c.RecvFrame(5 * time.Second)
	}
	if err != nil || f.Opcode != frame.OpContinuation || !f.Fin || string(f.Payload) != "\xa9llo" || pongs != 1 {
		t.Fatalf("second fragment: %+v, %v; %d pongs", f, err, pongs)
	}
	// A large message, over the library's default frame size, also comes back.
	big := strings.Repeat("x", 200_000)
	c.WriteMessage(context.Background(), frame.OpText, []byte(big))
	if _, msg := readMessage(t, c); msg != big {
		t.Fatalf("got %d bytes back", len(msg))
	}
	if err := c.Close(frame.CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	s.stop()
	for _, want := range []string{"websocket open", "websocket close", "close_code=1000"} {
		if !strings.Contains(s.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, s.log.String())
		}
	}
}

func TestServeLimits(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{maxPayload: 10, rate: 2})
	c := dialtest.Dial(t, s.wsURL(), nil)
	c.WriteMessage(context.Background(), frame.OpText, []byte("0123456789")) // at the cap: fine
	if _, msg := readMessage(t, c); msg != "0123456789" {
		t.Fatalf("got %q", msg)
	}
	c.WriteMessage(context.Background(), frame.OpText, []byte("0123456789A"))
	_, _, err := c.ReadMessage(context.Background(), nil)
	if code := transport.CloseStatus(err); code != frame.CloseMessageTooBig {
		t.Fatalf("over -max-payload: %v (code %d), want 1009", err, code)
	}

	c = dialtest.Dial(t, s.wsURL(), nil)
	for range 5 {
		c.WriteMessage(context.Background(), frame.OpText, []byte("x"))
	}
	for {
		if _, _, err = c.ReadMessage(context.Background(), nil); err != nil {
			break
		}
	}
	if code := transport.CloseStatus(err); code != frame.ClosePolicyViolation {
		t.Fatalf("over -rate: %v (code %d), want 1008", err, code)
	}
}

func TestServeShutdownSendsGoingAway(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	c := dialtest.Dial(t, s.wsURL(), nil)
	c.WriteMessage(context.Background(), frame.OpText, []byte("hi"))
	readMessage(t, c)

	got := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage(context.Background(), nil)
		got <- err
	}()
	start := time.Now()
	s.stop()
	err := <-got
	var ce *transport.CloseError
	if !errors.As(err, &ce) || ce.Code != frame.CloseGoingAway {
		t.Fatalf("got %v, want a 1001 close", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if _, err := http.Get(s.pageURL()); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

func TestServePage(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{path: "/echo"})
	defer http.DefaultClient.CloseIdleConnections()
	resp, err := http.Get(s.pageURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"new WebSocket(", "location.host", `const path = "/echo";`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
	// A plain GET of the WebSocket path is refused by the handshake, not served the page.
	resp, err = http.Get(s.pageURL() + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET of the WebSocket path: %s", resp.Status)
	}
}

func TestServeURLs(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	if !strings.HasPrefix(s.pageURL(), "http://127.0.0.1:") || strings.HasSuffix(s.pageURL(), ":0") {
		t.Errorf("page URL %s", s.pageURL())
	}
	if s.wsURL() != "ws"+strings.TrimPrefix(s.pageURL(), "http")+"/ws" {
		t.Errorf("WebSocket URL %s", s.wsURL())
	}
}
