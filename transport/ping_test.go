package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// echoServer reads messages on c until it ends, answering pings (ReadMessage's default).
func echoServer(t *testing.T, c *Conn) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := c.ReadMessage(context.Background(), nil); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.CloseNow()
		<-done
	})
}

// readers are the ways a goroutine can read a Conn; Ping must work beside each.
var readers = []struct {
	name string
	read func(c *Conn) error
}{
	{"RecvFrame", func(c *Conn) error { _, err := c.RecvFrame(0); return err }},
	{"ReadMessage", func(c *Conn) error { _, _, err := c.ReadMessage(context.Background(), nil); return err }},
	{"NextReader", func(c *Conn) error { _, _, err := c.NextReader(context.Background()); return err }},
}

// reading runs read on c until it fails, and waits for it at cleanup.
func reading(t *testing.T, c *Conn, read func(*Conn) error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for read(c) == nil {
		}
	}()
	t.Cleanup(func() {
		c.CloseNow()
		<-done
	})
}

// pingPair returns a client Conn over TCP on which read runs, facing a server that reads
// (and so answers pings) until the test ends.
func pingPair(t *testing.T, read func(*Conn) error) *Conn {
	t.Helper()
	wstest.CheckGoroutines(t)
	client, server := connPair(t, false, nil)
	echoServer(t, server)
	reading(t, client, read)
	return client
}

func TestPingReturnsRTT(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			client := pingPair(t, rd.read)
			for i := 0; i < 3; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rtt, err := client.Ping(ctx)
				cancel()
				if err != nil {
					t.Fatalf("ping %d: %v", i, err)
				}
				if rtt <= 0 || rtt > 5*time.Second {
					t.Fatalf("ping %d: rtt %v", i, rtt)
				}
			}
		})
	}
}

func TestPingKeepsPongHandler(t *testing.T) {
	wstest.CheckGoroutines(t)
	var mu sync.Mutex
	var seen [][]byte
	client, server := connPair(t, false, &Options{PongHandler: func(_ *Conn, p []byte) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, append([]byte(nil), p...))
		return nil
	}})
	echoServer(t, server)
	reading(t, client, readers[1].read)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || len(seen[0]) != 8 {
		t.Fatalf("the PongHandler saw %q, want one 8-byte pong", seen)
	}
}

func TestPingConcurrent(t *testing.T) {
	client := pingPair(t, readers[0].read)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := client.Ping(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(client.pings().wait); n != 0 {
		t.Fatalf("%d pings still registered", n)
	}
}

func TestPingWithoutPong(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer bool // the peer answers, but nobody reads the Conn
	}{
		{"peer silent", false},
		{"nobody reading", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := rawPair(t, Client, nil)
			peerDone := make(chan struct{})
			go func() {
				defer close(peerDone)
				for {
					f, err := p.read()
					if err != nil {
						return
					}
					if f.Opcode == frame.OpPing && tc.answer {
						p.send(true, frame.OpPong, f.Payload)
					}
				}
			}()
			if !tc.answer {
				reading(t, c, readers[1].read)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			if _, err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Ping: %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("Ping returned after %v", d)
			}
			c.CloseNow()
			p.nc.Close()
			<-peerDone
		})
	}
}

func TestPingErrors(t *testing.T) {
	wstest.CheckGoroutines(t)
	client, server := connPair(t, false, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := client.Ping(ctx); err != context.Canceled {
		t.Fatalf("Ping with a cancelled context: %v", err)
	}
	// A Ping waiting when the stream closes returns ErrClosed.
	res := make(chan error, 1)
	go func() {
		_, err := client.Ping(context.Background())
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	client.CloseNow()
	if err := <-res; err != ErrClosed && !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping across CloseNow: %v", err)
	}
	if _, err := client.Ping(context.Background()); err == nil {
		t.Fatal("Ping after CloseNow succeeded")
	}
	server.CloseNow()
}

func TestKeepalive(t *testing.T) {
	t.Run("peer answers", func(t *testing.T) {
		client := pingPair(t, readers[1].read)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := client.Keepalive(ctx, 20*time.Millisecond, 2*time.Second); err != context.DeadlineExceeded {
			t.Fatalf("Keepalive: %v, want its context's end", err)
		}
		if got := client.Stats(); got.FramesOut < 3 {
			t.Fatalf("%d frames sent in 300 ms at a 20 ms interval", got.FramesOut)
		}
		select {
		case <-client.Done():
			t.Fatal("Keepalive closed a live connection")
		default:
		}
	})
	t.Run("peer silent", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		c, p := rawPair(t, Client, nil)
		go func() {
			for {
				if _, err := p.read(); err != nil {
					return
				}
			}
		}()
		reading(t, c, readers[1].read)
		start := time.Now()
		if err := c.Keepalive(context.Background(), 10*time.Millisecond, 50*time.Millisecond); err != ErrPongTimeout {
			t.Fatalf("Keepalive: %v, want ErrPongTimeout", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
			t.Fatalf("dead peer found after %v, want 60 ms or a little more", d)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the connection is still open")
		}
		p.nc.Close()
	})
	t.Run("closed", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		client, server := connPair(t, false, nil)
		go func() {
			time.Sleep(20 * time.Millisecond)
			client.CloseNow()
		}()
		if err := client.Keepalive(context.Background(), time.Hour, 0); err != ErrClosed {
			t.Fatalf("Keepalive after close: %v", err)
		}
		server.CloseNow()
	})
	t.Run("off", func(t *testing.T) {
		client, _ := connPair(t, false, nil)
		if err := client.Keepalive(context.Background(), -1, 0); err != nil {
			t.Fatalf("Keepalive(-1): %v", err)
		}
	})
}
