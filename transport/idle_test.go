package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

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
	nc, sc := wstest.TCPPair(t)
	if _, err := sc.Write(frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpText}, []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	w := &wrappedConn{TCPConn: nc}
	c := NewConn(w, Client, Setup{}, nil)
	defer c.CloseNow()
	if c.raw != nil {
		t.Fatal("a wrapper of *net.TCPConn is read directly")
	}
	if _, msg, err := c.ReadMessage(context.Background(), nil); err != nil || string(msg) != "hi" || w.n != 4 {
		t.Fatalf("%q %v, wrapper saw %d bytes", msg, err, w.n)
	}
	if NewConn(nc, Client, Setup{}, nil).raw == nil {
		t.Fatal("a *net.TCPConn is not read directly")
	}
}

// TestIdleConnHeap measures what a server Conn waiting over TCP for its peer's next message
// holds on the heap, beyond what a goroutine waiting in a plain Read of the same kind of
// socket holds: its struct and its raw-read callback, and no buffer or reader state.
func TestIdleConnHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what is allocated")
	}
	const n = 200
	msg := frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpBinary, Masked: true}, []byte("ping"))
	// measure starts serve on the server end of n connections, has each echo one message so
	// that it has been through a whole read and write, and returns the heap growth per
	// connection once all of them wait for the next.
	measure := func(serve func(nc net.Conn)) float64 {
		clients := make([]net.Conn, n)
		servers := make([]net.Conn, n)
		for i := range n {
			clients[i], servers[i] = wstest.TCPPair(t)
		}
		before := wstest.LiveHeap()
		for _, nc := range servers {
			go serve(nc)
		}
		for _, nc := range clients {
			if _, err := nc.Write(msg); err != nil {
				t.Fatal(err)
			}
			echo := make([]byte, len(msg)-4)
			if _, err := io.ReadFull(nc, echo); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // for the last echoes' goroutines to wait again
		per := float64(int64(wstest.LiveHeap())-int64(before)) / n
		for i := range n {
			clients[i].Close()
			servers[i].Close()
		}
		return per
	}
	plainServe := func(nc net.Conn) {
		buf := make([]byte, 64)
		for {
			k, err := nc.Read(buf)
			if err != nil {
				return
			}
			// The test's one short message arrives whole: echo it unmasked.
			h, hl, _ := frame.DecodeHeader(buf[:k])
			frame.Mask(h.Key, 0, buf[hl:k])
			h.Masked = false
			if _, err := nc.Write(frame.AppendFrame(nil, h, buf[hl:k])); err != nil {
				return
			}
		}
	}
	// The first round makes the goroutines; the runtime keeps them for reuse once they end,
	// so that the rounds measured do not pay for them.
	measure(plainServe)
	plain := measure(plainServe)
	ecows := measure(func(nc net.Conn) { serveEcho(NewConn(nc, Server, Setup{}, nil)) })
	t.Logf("heap per idle connection: plain Read %.0f B, Conn %.0f B, difference %.0f B", plain, ecows, ecows-plain)
	if ecows-plain > 320 {
		t.Errorf("an idle Conn holds %.0f B more than a plain Read (%.0f B against %.0f B)", ecows-plain, ecows, plain)
	}
}

// TestConnSize holds the Conn under a ceiling, the figure doc.go gives for 64-bit platforms:
// an idle connection's heap is its Conn, a few small objects and its socket (BenchmarkIdleConn),
// so each 16 bytes more costs it about 1.5%. A Conn may shrink; growing past the ceiling must
// be paid for by a gain, under the budget in doc.go, and the figure there changed with it. On
// 32-bit platforms the Conn is smaller still.
func TestConnSize(t *testing.T) {
	const ceiling = 160
	var c Conn
	if got := unsafe.Sizeof(c); got > ceiling {
		t.Errorf("a Conn weighs %d bytes, over the %d bytes doc.go gives for an idle connection: see its budget", got, ceiling)
	}
}

// nopObserver is an Observer that does nothing.
type nopObserver struct{}

func (nopObserver) Received(int64, int64)        {}
func (nopObserver) Sent(int64, int64)            {}
func (nopObserver) FlushReceived()               {}
func (nopObserver) FlushSent()                   {}
func (nopObserver) Pinged(time.Duration)         {}
func (nopObserver) Closed(frame.CloseCode, Side) {}

// TestObserverConnHeap measures what an Observer adds to a Conn: the extras, if the Conn had
// none, and the Observer's state; the Observer itself is shared (metrics.Registry shares one
// per route). It counts the bytes NewConn allocates, all of which the Conn keeps.
func TestObserverConnHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what is allocated")
	}
	var shared nopObserver
	perConn := func(setup Setup) float64 {
		const n = 1000
		conns := make([]*Conn, n)
		a, _ := net.Pipe()
		defer a.Close()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range conns {
			conns[i] = NewConn(a, Server, setup, nil)
		}
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(conns)
		return float64(after.TotalAlloc-before.TotalAlloc) / n
	}
	without, with := perConn(Setup{}), perConn(Setup{Observer: shared})
	t.Logf("NewConn: %.0f B, with an Observer %.0f B", without, with)
	if with-without > 128 { // 64 B of extras and 48 of state, and room for a stray allocation elsewhere
		t.Errorf("an Observer adds %.0f B to a Conn (%.0f B against %.0f B)", with-without, with, without)
	}
}
