package transport

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

func TestPeerInitiatedClose(t *testing.T) {
	for _, role := range []Role{Server, Client} {
		t.Run(role.String(), func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := rawPair(t, role, &Options{CloseTimeout: time.Second})
			p.send(true, frame.OpClose, []byte{0x0f, 0xa0, 'o', 'k'}) // 4000 "ok"
			done := make(chan struct{})
			go func() {
				defer close(done)
				if got := p.expectClose(); got != 4000 {
					t.Errorf("echoed %d, want 4000", got)
				}
				if role == Client {
					time.Sleep(50 * time.Millisecond)
					p.nc.Close() // the server closes TCP first
				}
			}()
			start := time.Now()
			f, err := c.RecvFrame(time.Second)
			if err != nil || f.Opcode != frame.OpClose || f.CloseCode() != 4000 || f.CloseReason() != "ok" {
				t.Fatalf("close frame: %+v %v", f, err)
			}
			if role == Client && time.Since(start) > 900*time.Millisecond {
				t.Fatal("client did not notice the server's FIN")
			}
			<-done
			if role == Server {
				p.expectEOF()
			}
			_, err = c.RecvFrame(0)
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "ok" {
				t.Fatalf("after close: %v", err)
			}
			if _, err := c.SendText([]byte("late")); err != ErrClosed {
				t.Fatalf("send after close: %v", err)
			}
			if err := c.Close(frame.CloseNormal, ""); err != ErrClosed {
				t.Fatalf("Close after the handshake: %v", err)
			}
		})
	}
}

func TestEmptyCloseIsEchoedEmpty(t *testing.T) {
	c, p := rawPair(t, Server, nil)
	p.send(true, frame.OpClose, nil)
	go c.RecvFrame(time.Second)
	f, err := p.read()
	if err != nil || f.Opcode != frame.OpClose || len(f.Payload) != 0 {
		t.Fatalf("echo: %+v %v", f, err)
	}
}

func TestCloseHandshake(t *testing.T) {
	t.Run("peer answers, data first", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		c, p := rawPair(t, Server, &Options{CloseTimeout: 2 * time.Second})
		go func() {
			if got := p.expectClose(); got != frame.CloseGoingAway {
				t.Errorf("close code %d", got)
			}
			p.send(true, frame.OpText, []byte("in flight"))
			p.send(true, frame.OpClose, []byte{0x03, 0xe9})
		}()
		if err := c.Close(frame.CloseGoingAway, "shutdown"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		p.expectEOF()
		if _, err := c.RecvFrame(0); err != ErrClosed {
			t.Fatalf("read after Close: %v", err)
		}
	})
	t.Run("peer silent", func(t *testing.T) {
		c, p := rawPair(t, Client, &Options{CloseTimeout: 100 * time.Millisecond})
		start := time.Now()
		err := c.Close(frame.CloseNormal, "")
		if CloseStatus(err) != frame.CloseAbnormal {
			t.Fatalf("Close: %v", err)
		}
		if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
			t.Fatalf("Close took %v", d)
		}
		if p.expectClose() != frame.CloseNormal {
			t.Fatal("no close frame")
		}
		p.expectEOF()
	})
	t.Run("with a concurrent reader", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		client, server := connPair(t, false, &Options{CloseTimeout: 2 * time.Second})
		var wg sync.WaitGroup
		wg.Add(2)
		var serverErr, clientErr error
		go func() { // the server echoes until the close
			defer wg.Done()
			for {
				f, err := server.RecvFrame(0)
				if err != nil || f.Opcode == frame.OpClose {
					serverErr = err
					return
				}
			}
		}()
		go func() { // a client reader blocked with no deadline
			defer wg.Done()
			_, clientErr = client.RecvFrame(0)
		}()
		time.Sleep(20 * time.Millisecond)
		if err := client.Close(frame.CloseNormal, "bye"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wg.Wait()
		if serverErr != nil {
			t.Fatalf("server: %v", serverErr)
		}
		if clientErr != nil { // the reader got the server's close frame
			t.Fatalf("client reader: %v", clientErr)
		}
	})
	t.Run("refused code sends nothing", func(t *testing.T) {
		c, p := rawPair(t, Server, nil)
		if err := c.Close(frame.CloseAbnormal, ""); err != ErrCloseCode {
			t.Fatalf("Close(1006): %v", err)
		}
		if _, err := c.SendText([]byte("still open")); err != nil {
			t.Fatal(err)
		}
		if f, err := p.read(); err != nil || string(f.Payload) != "still open" {
			t.Fatalf("%+v %v", f, err)
		}
	})
}

func TestCloseNow(t *testing.T) {
	wstest.CheckGoroutines(t)
	c, p := rawPair(t, Server, nil)
	done := make(chan error)
	go func() { _, err := c.RecvFrame(0); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := c.CloseNow(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != ErrClosed {
		t.Fatalf("blocked reader got %v", err)
	}
	p.expectEOF()
	if err := c.CloseNow(); err != ErrClosed {
		t.Fatalf("second CloseNow: %v", err)
	}
}

func TestCloseWhileSending(t *testing.T) {
	wstest.CheckGoroutines(t)
	client, server := connPair(t, false, &Options{CloseTimeout: time.Second})
	go func() {
		for {
			if _, err := server.RecvFrame(0); err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := client.SendBinary([]byte("payload")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	client.Close(frame.CloseNormal, "")
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != ErrClosed {
			t.Errorf("sender ended with %v, want ErrClosed", err)
		}
	}
}

// TestDone checks the Done channel asked for before the stream closes, after it, and while it
// closes: each is closed once the stream is, exactly once.
func TestDone(t *testing.T) {
	closedNow := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	a, _ := net.Pipe()
	c := NewConn(a, Server, Setup{}, nil)
	before := c.Done()
	if closedNow(before) {
		t.Fatal("Done closed before the stream")
	}
	if c.Done() != before {
		t.Fatal("Done returned another channel")
	}
	c.CloseNow()
	if !closedNow(before) {
		t.Fatal("Done not closed after CloseNow")
	}
	a, _ = net.Pipe()
	c = NewConn(a, Server, Setup{}, nil)
	c.CloseNow()
	if !closedNow(c.Done()) {
		t.Fatal("Done asked after CloseNow is not closed")
	}
	for range 200 {
		a, _ = net.Pipe()
		c = NewConn(a, Server, Setup{}, nil)
		got := make(chan (<-chan struct{}))
		go func() { got <- c.Done() }()
		c.CloseNow()
		select {
		case <-<-got:
		case <-time.After(5 * time.Second):
			t.Fatal("Done asked while the stream closed is never closed")
		}
	}
}

func TestCloseRead(t *testing.T) {
	closeFrame := func(code frame.CloseCode) []byte { return []byte{byte(code >> 8), byte(code)} }
	tests := []struct {
		name string
		// end ends the connection, from the peer p or the write-only server c, and checks
		// what the peer saw.
		end func(t *testing.T, c *Conn, p *peer, cancel context.CancelFunc)
	}{
		{"peer pings then closes", func(t *testing.T, c *Conn, p *peer, _ context.CancelFunc) {
			p.send(true, frame.OpPing, []byte("are you there"))
			f, err := p.read()
			if err != nil || f.Opcode != frame.OpPong || string(f.Payload) != "are you there" {
				t.Fatalf("peer got %v %q, %v; want the pong", f.Opcode, f.Payload, err)
			}
			p.send(true, frame.OpClose, closeFrame(frame.CloseNormal))
			if code := p.expectClose(); code != frame.CloseNormal {
				t.Fatalf("peer got close %d, want 1000 echoed", code)
			}
		}},
		{"peer sends a data message", func(t *testing.T, c *Conn, p *peer, _ context.CancelFunc) {
			p.send(true, frame.OpText, []byte("hello?"))
			if code := p.expectClose(); code != frame.ClosePolicyViolation {
				t.Fatalf("peer got close %d, want 1008", code)
			}
			p.send(true, frame.OpClose, closeFrame(frame.ClosePolicyViolation))
		}},
		{"server closes", func(t *testing.T, c *Conn, p *peer, _ context.CancelFunc) {
			done := make(chan error, 1)
			go func() { done <- c.Close(frame.CloseGoingAway, "") }()
			if code := p.expectClose(); code != frame.CloseGoingAway {
				t.Fatalf("peer got close %d, want 1001", code)
			}
			p.send(true, frame.OpClose, closeFrame(frame.CloseGoingAway))
			if err := <-done; err != nil {
				t.Fatalf("Close: %v", err)
			}
		}},
		{"ctx cancelled", func(t *testing.T, c *Conn, p *peer, cancel context.CancelFunc) {
			cancel()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := rawPair(t, Server, &Options{CloseTimeout: 5 * time.Second})
			parent, cancel := context.WithCancel(t.Context())
			defer cancel()
			ctx := c.CloseRead(parent)
			// The server writes while its reader runs.
			if _, err := c.SendText([]byte("news")); err != nil {
				t.Fatal(err)
			}
			if f, err := p.read(); err != nil || string(f.Payload) != "news" {
				t.Fatalf("peer got %q, %v", f.Payload, err)
			}
			if ctx.Err() != nil {
				t.Fatal("context done before the Conn ended")
			}
			tt.end(t, c, p, cancel)
			p.expectEOF()
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("context not done 5 s after the Conn ended")
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("stream not closed")
			}
		})
	}
}
