package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// shortStream takes budget bytes, then fails every write, having written what it could.
type shortStream struct{ budget int }

var errShort = errors.New("short stream")

func (s *shortStream) Read([]byte) (int, error) { return 0, io.EOF }
func (s *shortStream) Write(p []byte) (int, error) {
	n := min(len(p), s.budget)
	s.budget -= n
	if n < len(p) {
		return n, errShort
	}
	return n, nil
}
func (s *shortStream) Close() error { return nil }

// A send that fails counts only the bytes of its frames that reached the stream: none after
// CloseNow or a reset, the part the stream took of a write cut short.
func TestFailedSendCounts(t *testing.T) {
	sends := func(c *Conn) map[string]func() (int, error) {
		prep, _ := NewPrepared(frame.OpText, []byte("prepared"))
		return map[string]func() (int, error){
			"SendText":      func() (int, error) { return c.SendText([]byte("hello")) },
			"SendBinary":    func() (int, error) { return c.SendBinary([]byte("hello")) },
			"SendPing":      func() (int, error) { return c.SendPing([]byte("hello")) },
			"SendFrame":     func() (int, error) { return c.SendFrame(true, frame.OpText, []byte("hello")) },
			"SendClose":     func() (int, error) { return c.SendClose(frame.CloseNormal, "hello") },
			"WriteMessage":  func() (int, error) { return c.WriteMessage(context.Background(), frame.OpText, []byte("hello")) },
			"WritePrepared": func() (int, error) { return c.WritePrepared(prep) },
		}
	}
	t.Run("CloseNow", func(t *testing.T) {
		for _, role := range []Role{Server, Client} {
			c, _ := rawPair(t, role, nil)
			c.CloseNow()
			for name, send := range sends(c) {
				if n, err := send(); n != 0 || err != ErrClosed {
					t.Errorf("%v %s after CloseNow: %d, %v; want 0, ErrClosed", role, name, n, err)
				}
			}
		}
	})
	t.Run("reset", func(t *testing.T) {
		a, b := wstest.TCPPair(t)
		c := NewConn(a, Server, Setup{}, nil)
		b.SetLinger(0)
		b.Close() // a reset
		a.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := a.Read(make([]byte, 1)); isTimeout(err) {
			t.Fatal("no reset seen")
		}
		if n, err := c.SendText([]byte("hello")); n != 0 || err == nil {
			t.Fatalf("SendText after a reset: %d, %v; want 0 and an error", n, err)
		}
		for name, send := range sends(c) {
			if n, err := send(); n != 0 || err == nil {
				t.Errorf("%s after a reset: %d, %v; want 0 and an error", name, n, err)
			}
		}
	})
	t.Run("cut short", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			role   Role
			size   int
			budget int
		}{
			{"batch", Server, 100, 50},
			{"batch masked", Client, 100, 50},
			{"writev", Server, 8000, 1000},
			{"masked loop", Client, 8000, 5000},
		} {
			c := NewConn(&shortStream{budget: tt.budget}, tt.role, Setup{}, nil)
			if n, err := c.SendBinary(make([]byte, tt.size)); n != tt.budget || err != errShort {
				t.Errorf("%s: %d, %v; want %d, the stream's error", tt.name, n, err, tt.budget)
			}
			if n, err := c.SendBinary(make([]byte, tt.size)); n != 0 || err != errShort {
				t.Errorf("%s, the next send: %d, %v; want 0, the first error", tt.name, n, err)
			}
		}
	})
}

// slowPair returns a Conn in role over TCP with small socket buffers, and the raw far end,
// so that a large write waits on the peer's reading rather than on the buffers.
func slowPair(t *testing.T, role Role, opts *Options) (*Conn, net.Conn) {
	a, b := wstest.TCPPair(t)
	a.SetWriteBuffer(32 << 10)
	b.SetReadBuffer(32 << 10)
	return NewConn(a, role, Setup{}, opts), b
}

// readPaced reads n bytes from nc at rate bytes per second, then returns when they are read.
func readPaced(nc net.Conn, n, rate int64) error {
	buf := make([]byte, 16<<10)
	start := time.Now()
	for got := int64(0); got < n; {
		time.Sleep(time.Duration(got*int64(time.Second)/rate) - time.Since(start))
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		k, err := nc.Read(buf[:min(int64(len(buf)), n-got)])
		got += int64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteTimeout bounds a stall, not a write: one frame far larger than the peer reads in
// WriteTimeout goes through, however it is written, as long as the peer keeps reading.
func TestWriteTimeoutBoundsStall(t *testing.T) {
	for _, tt := range []struct {
		name string
		role Role
		size int
		wbuf int // write buffer size
	}{
		{"writev", Server, 16 << 20, 0},
		{"masked", Client, 6 << 20, 0},
		{"batch", Server, 6 << 20, 8 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, nc := slowPair(t, tt.role, &Options{WriteTimeout: 2 * time.Second, MaxPayloadLen: -1, MaxMessageLen: -1, WriteBufferSize: tt.wbuf})
			want := frame.Header{Length: int64(tt.size), Masked: tt.role == Client}.Len() + tt.size
			read := make(chan error, 1)
			go func() { read <- readPaced(nc, int64(want), 1<<20) }()
			start := time.Now()
			if n, err := c.SendBinary(make([]byte, tt.size)); n != want || err != nil {
				t.Fatalf("%d of %d bytes, %v after %v", n, want, err, time.Since(start))
			}
			if err := <-read; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A peer that stops reading still gets the write cut, about WriteTimeout after it stopped.
func TestWriteTimeoutCutsStall(t *testing.T) {
	t.Parallel()
	c, nc := slowPair(t, Server, &Options{WriteTimeout: 2 * time.Second, MaxPayloadLen: -1, MaxMessageLen: -1})
	stopped := make(chan time.Time, 1)
	go func() {
		readPaced(nc, 3<<20, 1<<20) // 3 s of reading, longer than WriteTimeout
		stopped <- time.Now()
	}()
	_, err := c.SendBinary(make([]byte, 16<<20))
	cut := time.Now()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v, want a timeout", err)
	}
	var stop time.Time
	select {
	case stop = <-stopped:
	default:
		t.Fatal("the write was cut while the peer was still reading")
	}
	if d := cut.Sub(stop); d < time.Second || d > 10*time.Second {
		t.Fatalf("the write was cut %v after the peer stopped reading; want about 2 s", d)
	}
}

// stalledPair returns a server Conn and the raw peer facing it over TCP with small socket
// buffers, so that a large write blocks as soon as the peer stops reading.
func stalledPair(t *testing.T, compress bool) (*Conn, *peer) {
	t.Helper()
	a, b := wstest.TCPPair(t)
	a.SetWriteBuffer(4096)
	b.SetReadBuffer(4096)
	opts := &Options{MaxMessageLen: -1, CloseTimeout: time.Second}
	var setup Setup
	if compress {
		opts.Compression = &CompressionOptions{Threshold: -1}
		setup.Deflate = DeflateParams{Enabled: true, NoContextTakeover: true, PeerNoContextTakeover: true}
	}
	return NewConn(a, Server, setup, opts), &peer{t: t, nc: b}
}

// writeWith writes msg as one message, with WriteMessage or through NextWriter in 64 KiB
// writes, and returns the error of the call that failed, if any.
func writeWith(ctx context.Context, c *Conn, stream bool, msg []byte) error {
	if !stream {
		_, err := c.WriteMessage(ctx, frame.OpBinary, msg)
		return err
	}
	w, err := c.NextWriter(ctx, frame.OpBinary)
	if err != nil {
		return err
	}
	for len(msg) > 0 {
		n := min(len(msg), 1<<16)
		if _, err := w.Write(msg[:n]); err != nil {
			w.Close()
			return err
		}
		msg = msg[n:]
	}
	return w.Close()
}

func TestWriteContext(t *testing.T) {
	big := testData(1, 16<<20, 1) // far more than the socket buffers hold
	tests := []struct {
		name     string
		stream   bool // NextWriter instead of WriteMessage
		compress bool
		cancel   bool // cancel the context instead of letting its deadline pass
	}{
		{name: "WriteMessage, deadline"},
		{name: "WriteMessage, cancelled", cancel: true},
		{name: "WriteMessage compressed, deadline", compress: true},
		{name: "NextWriter, deadline", stream: true},
		{name: "NextWriter, cancelled", stream: true, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name+", done before", func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := stalledPair(t, tt.compress)
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
			defer cancel()
			if tt.cancel {
				cancel()
			}
			<-ctx.Done()
			if err := writeWith(ctx, c, tt.stream, []byte("never sent")); !errors.Is(err, ctx.Err()) || errors.Is(err, ErrClosed) {
				t.Fatalf("write with a done context: %v, want %v alone", err, ctx.Err())
			}
			// Nothing was written, and the Conn goes on: the peer's first message is the next one.
			if err := writeWith(t.Context(), c, tt.stream, []byte("sent")); err != nil {
				t.Fatal(err)
			}
			f, err := p.read()
			if err != nil || f.Opcode != frame.OpBinary || f.Rsv1 != tt.compress || !f.Rsv1 && string(f.Payload) != "sent" {
				t.Fatalf("peer got %v %q, %v; want the second message only", f.Opcode, f.Payload, err)
			}
		})
		t.Run(tt.name+", mid-write", func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := stalledPair(t, tt.compress)
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			want := context.DeadlineExceeded
			if tt.cancel {
				ctx, cancel = context.WithCancel(t.Context())
				time.AfterFunc(100*time.Millisecond, cancel)
				want = context.Canceled
			}
			start := time.Now()
			err := writeWith(ctx, c, tt.stream, big) // the peer reads nothing
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("write returned after %v", took)
			}
			if !errors.Is(err, want) || !errors.Is(err, ErrClosed) {
				t.Fatalf("write: %v, want an error matching %v and ErrClosed", err, want)
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("stream still open 5 s after the write was cut")
			}
			if _, err := c.SendText([]byte("late")); err != ErrClosed {
				t.Fatalf("SendText after the cut: %v, want ErrClosed", err)
			}
			p.nc.Close()
		})
	}
}

// A context that ends after its write has returned changes nothing.
func TestWriteContextAfterWrite(t *testing.T) {
	wstest.CheckGoroutines(t)
	client, server := connPair(t, false, &Options{MaxMessageLen: -1})
	defer client.CloseNow()
	defer server.CloseNow()
	msg := testData(1, 1<<20, 2)
	got := make(chan []byte, 2)
	go func() {
		for range 2 {
			_, b, _ := server.ReadMessage(context.Background(), nil)
			got <- b
		}
	}()
	for _, stream := range []bool{false, true} {
		ctx, cancel := context.WithCancel(t.Context())
		if err := writeWith(ctx, client, stream, msg); err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case b := <-got:
			mustEqual(t, b, msg)
		case <-time.After(5 * time.Second):
			t.Fatal("message not received")
		}
	}
	if _, err := client.SendText([]byte("still open")); err != nil {
		t.Fatalf("SendText after the contexts ended: %v", err)
	}
}
