package transport

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
)

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, class, size int }{
		{0, 0, 256}, {1, 0, 256}, {256, 0, 256}, {257, 1, 512}, {4096, 4, 4096},
		{4097, 5, 8192}, {1 << 20, maxClass - minClass, 1 << 20}, {1<<20 + 1, -1, 1<<20 + 1},
	} {
		if got := sizeClass(tc.n); got != tc.class {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, got, tc.class)
		}
		b := getBuf(tc.n)
		if len(*b) != tc.size {
			t.Errorf("getBuf(%d) has %d bytes, want %d", tc.n, len(*b), tc.size)
		}
		putBuf(b)
	}
	// A buffer that is not a pooled size is never pooled, so the pool cannot hand out one that
	// is too small.
	odd := make([]byte, 300)
	putBuf(&odd)
	small := make([]byte, 128)
	putBuf(&small)
	for range 100 {
		if b := getBuf(256); len(*b) < 256 {
			t.Fatalf("getBuf(256) returned %d bytes", len(*b))
		}
	}
}

// TestIdleHoldsNoBuffer checks that a server Conn over TCP waiting for its peer holds no read
// buffer, and that one over a stream it cannot read directly keeps it.
func TestIdleHoldsNoBuffer(t *testing.T) {
	for _, tcp := range []bool{true, false} {
		client, server := connPair(t, !tcp, nil)
		// net.Pipe has no buffer: each send waits for the read.
		go client.SendText([]byte("hello"))
		if _, msg, err := server.ReadMessage(context.Background(), nil); err != nil || string(msg) != "hello" {
			t.Fatalf("tcp %v: %q %v", tcp, msg, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, _, err := server.ReadMessage(ctx, nil)
		cancel()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("tcp %v: %v", tcp, err)
		}
		if held := server.rd.bufp != nil; held == tcp {
			t.Errorf("tcp %v: read buffer held while waiting: %v", tcp, held)
		}
		// The Conn still works after waiting without a buffer.
		go client.SendBinary([]byte("again"))
		if _, msg, err := server.ReadMessage(context.Background(), nil); err != nil || string(msg) != "again" {
			t.Fatalf("tcp %v: %q %v", tcp, msg, err)
		}
	}
}

// wrappedConn embeds a *net.TCPConn, so it has SyscallConn, but counts what it reads: reading
// its descriptor directly would bypass that.
type wrappedConn struct {
	*net.TCPConn
	n int
}

func (w *wrappedConn) Read(p []byte) (int, error) {
	n, err := w.TCPConn.Read(p)
	w.n += n
	return n, err
}

func TestRawReadOnlyForNetTypes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write(frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpText}, []byte("hi")))
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := &wrappedConn{TCPConn: nc.(*net.TCPConn)}
	c := NewConn(w, Client, Setup{}, nil)
	defer c.CloseNow()
	if c.rd.raw != nil {
		t.Fatal("a wrapper of *net.TCPConn is read directly")
	}
	if _, msg, err := c.ReadMessage(context.Background(), nil); err != nil || string(msg) != "hi" || w.n != 4 {
		t.Fatalf("%q %v, wrapper saw %d bytes", msg, err, w.n)
	}
	if NewConn(nc, Client, Setup{}, nil).rd.raw == nil {
		t.Fatal("a *net.TCPConn is not read directly")
	}
}
