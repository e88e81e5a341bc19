package reliability

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

// The failures TestCloseWhileSending and TestLoad met by chance, each made to happen every
// time on a Conn over an in-memory stream.

// scriptedStream is an in-memory stream: reads come from in, then io.EOF; writes are kept
// until failAt bytes have been written, after which they fail.
type scriptedStream struct {
	mu     sync.Mutex
	in     *bytes.Reader
	out    bytes.Buffer
	failAt int // -1: never
	closed bool
}

var errBroken = errors.New("scriptedStream: broken pipe")

func (s *scriptedStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	return s.in.Read(p)
}

func (s *scriptedStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, net.ErrClosed
	case s.failAt >= 0 && s.out.Len()+len(p) > s.failAt:
		n := max(0, s.failAt-s.out.Len())
		s.out.Write(p[:n])
		return n, errBroken
	}
	return s.out.Write(p)
}

func (s *scriptedStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Once the connection has ended in the middle of a fragmented message, by a failed write or
// by the peer's close, every later send must say so (the write's error or ErrClosed), not
// ErrFragmentOrder: callers test errors.Is(err, transport.ErrClosed) to tell a closed
// connection from a bug of their own, as the echo of "ecows serve" and AutoPong do.
func TestSendsAfterConnectionEndsMidMessage(t *testing.T) {
	// laterSends are sends of whole messages and frames after the end.
	laterSends := func(c *transport.Conn) map[string]error {
		w, err := c.NextWriter(context.Background(), frame.OpText)
		if err == nil {
			_, err = w.Write([]byte("x"))
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		_, e1 := c.WriteMessage(context.Background(), frame.OpText, []byte("after"))
		_, e2 := c.SendText([]byte("after"))
		_, e3 := c.SendBinary([]byte("after"))
		_, e4 := c.SendFrame(true, frame.OpBinary, []byte("after"))
		return map[string]error{"WriteMessage": e1, "SendText": e2, "SendBinary": e3, "SendFrame": e4, "NextWriter": err}
	}
	check := func(t *testing.T, sends map[string]error, want ...error) {
		t.Helper()
		for name, err := range sends {
			ok := false
			for _, w := range want {
				ok = ok || errors.Is(err, w)
			}
			if !ok {
				t.Errorf("%s after the end: %v, want one of %v", name, err, want)
			}
		}
	}

	t.Run("write fails between fragments", func(t *testing.T) {
		s := &scriptedStream{in: bytes.NewReader(nil), failAt: 70000}
		c := transport.NewConn(s, transport.Client, transport.Setup{}, nil)
		// 100 KiB go out in two fragments of up to 65535 bytes; the second one fails.
		if _, err := c.WriteMessage(context.Background(), frame.OpBinary, make([]byte, 100<<10)); !errors.Is(err, errBroken) {
			t.Fatalf("WriteMessage: %v, want the stream's error", err)
		}
		check(t, laterSends(c), errBroken, transport.ErrClosed)
	})

	t.Run("peer closes between fragments", func(t *testing.T) {
		closeFrame := frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpClose}, []byte{0x03, 0xe8})
		s := &scriptedStream{in: bytes.NewReader(closeFrame), failAt: -1}
		c := transport.NewConn(s, transport.Client, transport.Setup{}, nil)
		w, err := c.NextWriter(context.Background(), frame.OpBinary)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, 10000)); err != nil { // the first fragments go out
			t.Fatal(err)
		}
		if f, err := c.RecvFrame(0); err != nil || f.Opcode != frame.OpClose {
			t.Fatalf("RecvFrame: %v %v, want the close frame", f.Opcode, err)
		}
		if err := w.Close(); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("closing the message after the peer's close: %v, want ErrClosed", err)
		}
		check(t, laterSends(c), transport.ErrClosed)
	})
}

// Close of a NextWriter's writer must report its own message: it must not read the writer's
// state after letting the next message start, since all messages of a Conn share one writer.
// Here a text message ends inside a UTF-8 sequence, which Close must report, while another
// goroutine waits in NextWriter to send a binary message.
func TestNextWriterCloseReportsItsOwnMessage(t *testing.T) {
	s := &scriptedStream{in: bytes.NewReader(nil), failAt: -1}
	c := transport.NewConn(s, transport.Client, transport.Setup{}, nil)
	for i := range 200 {
		w, err := c.NextWriter(context.Background(), frame.OpText)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("caf\xc3")); err != nil { // "café" cut inside the é
			t.Fatal(err)
		}
		next := make(chan error, 1)
		go func() {
			nw, err := c.NextWriter(context.Background(), frame.OpBinary) // waits for the text message
			if err == nil {
				_, err = nw.Write([]byte("next"))
				if cerr := nw.Close(); err == nil {
					err = cerr
				}
			}
			next <- err
		}()
		time.Sleep(100 * time.Microsecond) // let it wait on the message lock
		if err := w.Close(); !errors.Is(err, transport.ErrInvalidUTF8) {
			t.Fatalf("round %d: Close of a text message ending inside a UTF-8 sequence: %v, want ErrInvalidUTF8", i, err)
		}
		if err := <-next; err != nil {
			t.Fatal(err)
		}
	}
}

// A middleware is applied once per connection, so concurrently for concurrent connections:
// applying Keepalive (or AutoPong with keepalive) with its default timeout must not race.
func TestKeepaliveAppliedConcurrently(t *testing.T) {
	mw := middleware.Keepalive(time.Minute, 0)
	h := middleware.HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error { return nil })
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			middleware.Chain(h, mw)
		}()
	}
	wg.Wait()
}

var _ io.ReadWriteCloser = (*scriptedStream)(nil)
