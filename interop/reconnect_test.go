package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/reconnect"
	"github.com/ecows/ecows/transport"
)

// TestReconnectNodeWS runs reconnect.Run against the npm ws server, which is killed while the
// client is connected and started again on the same port: the client reports the lost
// connection, retries with delays in their windows while nothing listens, and is back, with
// messages echoed, once the server is.
func TestReconnectNodeWS(t *testing.T) {
	requireNodeWS(t)
	setupCert(t)
	ln := listen(t)
	_, portNum, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	startWS := func() *proc {
		p := startProc(t, []string{"WS_PEER_PORT=" + portNum}, "node", "peers/ws_peer.js", "server", certFile, keyFile)
		if _, ok := p.events.wait(t, "listening", "", processStartWait); !ok {
			t.FailNow()
		}
		return p
	}
	first := startWS()

	const base, limit = 50 * time.Millisecond, 400 * time.Millisecond
	var mu sync.Mutex
	var events []reconnect.Event
	changed := make(chan struct{}, 1)
	record := func(e reconnect.Event) {
		e.Conn, e.Response = nil, nil
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	echoed := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan error, 1)
	go func() {
		res <- reconnect.Run(ctx, "ws://127.0.0.1:"+portNum+"/echo/reconnect", func(ctx context.Context, c *transport.Conn) error {
			if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte(textMsg)); err != nil {
				return err
			}
			_, msg, err := c.ReadMessage(ctx, nil)
			if err != nil {
				return err
			}
			if string(msg) != textMsg {
				return fmt.Errorf("echo %q", msg)
			}
			echoed <- struct{}{}
			for {
				if _, _, err := c.ReadMessage(ctx, nil); err != nil {
					return err
				}
			}
		}, &reconnect.Options{BaseDelay: base, MaxDelay: limit, OnConnect: record, OnDisconnect: record})
	}()
	waitEcho := func(what string) {
		t.Helper()
		select {
		case <-echoed:
		case err := <-res:
			t.Fatalf("Run ended before %s: %v", what, err)
		case <-time.After(scenarioTimeout):
			t.Fatalf("no echo %s within %v", what, scenarioTimeout)
		}
	}
	waitEcho("on the first connection")

	killProcessGroup(first.cmd)
	<-first.done
	// Wait for the lost connection and two attempts that found nothing listening.
	failed := func() (int, []reconnect.Event) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range events {
			if e.Err != nil && !e.Connected {
				n++
			}
		}
		return n, append([]reconnect.Event(nil), events...)
	}
	for deadline := time.After(scenarioTimeout); ; {
		n, ev := failed()
		if n >= 2 {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no failed attempts while the server was down; events %+v", ev)
		}
	}
	startWS()
	waitEcho("after the restart")
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(events) < 5 {
		t.Fatalf("events %+v", events)
	}
	if e := events[0]; e.Err != nil || e.Attempt != 1 {
		t.Fatalf("first event %+v, want the first connection", e)
	}
	lost := events[1]
	if !lost.Connected || !lost.Retry || transport.CloseStatus(lost.Err) != frame.CloseAbnormal {
		t.Fatalf("second event %+v, want the connection lost with 1006 and retried", lost)
	}
	back := -1
	for i, e := range events[1:] {
		i++
		if e.Err == nil && i > 1 { // the next connection
			back = i
			break
		}
		if !e.Retry {
			t.Fatalf("event %d not retried: %+v", i, e)
		}
		w := base
		for k := 1; k < e.Attempt; k++ {
			w *= 2
		}
		if w = min(w, limit); e.Delay < 0 || e.Delay >= w {
			t.Fatalf("event %d: delay %v outside [0, %v)", i, e.Delay, w)
		}
	}
	if back < 0 || events[back].Attempt != back {
		t.Fatalf("reconnection not found or misnumbered; events %+v", events)
	}
	t.Logf("%d attempts failed while the server was down", back-2)
}
