package transport

import (
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// loopStream replays the same bytes forever and discards writes: the cost it measures is
// the Conn's alone.
type loopStream struct {
	data []byte
	off  int
}

func (s *loopStream) Read(p []byte) (int, error) {
	n := copy(p, s.data[s.off:])
	s.off = (s.off + n) % len(s.data)
	return n, nil
}

func (s *loopStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *loopStream) Close() error                { return nil }

// size is a message size the benchmarks run at.
type size struct {
	name string
	n    int
}

var sizes = []size{{"16B", 16}, {"1KiB", 1024}, {"64KiB", 65535}}

// benchWrites runs write with a message of each size on a Conn of each role, over a stream
// that takes all it is given.
func benchWrites(b *testing.B, sizes []size, write func(c *Conn, p []byte) error) {
	for _, role := range []Role{Server, Client} {
		for _, s := range sizes {
			b.Run(role.String()+"/"+s.name, func(b *testing.B) {
				c := NewConn(&loopStream{data: []byte{0}}, role, Setup{}, nil)
				p := make([]byte, s.n)
				b.SetBytes(int64(s.n))
				b.ReportAllocs()
				for b.Loop() {
					if err := write(c, p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// masked returns a stream of masked binary frames of n bytes, as a client sends them.
func masked(n int) *loopStream {
	var data []byte
	for len(data) < 1<<16 {
		h := frame.Header{Fin: true, Opcode: frame.OpBinary, Masked: true, Key: [4]byte{1, 2, 3, 4}}
		data = frame.AppendFrame(data, h, make([]byte, n))
	}
	return &loopStream{data: data}
}

func BenchmarkRecvFrame(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			c := NewConn(masked(s.n), Server, Setup{}, nil)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.RecvFrame(0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadMessage(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			c := NewConn(masked(s.n), Server, Setup{}, nil)
			buf := make([]byte, 0, s.n)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				_, msg, err := c.ReadMessage(context.Background(), buf[:0])
				if err != nil || len(msg) != s.n {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSendBinary(b *testing.B) {
	benchWrites(b, sizes, func(c *Conn, p []byte) error {
		_, err := c.SendBinary(p)
		return err
	})
}

// deadlineStream is a loopStream with deadlines, as a net.Conn has, which never fire: the Conn
// then keeps its write deadline up to date as it does over a network.
type deadlineStream struct{ loopStream }

func (*deadlineStream) SetReadDeadline(time.Time) error  { return nil }
func (*deadlineStream) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkEcho is a server echoing a client's pipelined messages, ReadMessage then
// WriteMessage: the reader always has more input buffered, so the replies gather in batches
// (flush.go) as they do when a peer sends many messages at once.
func BenchmarkEcho(b *testing.B) {
	for _, s := range sizes[:2] {
		b.Run(s.name, func(b *testing.B) {
			c := NewConn(&deadlineStream{*masked(s.n)}, Server, Setup{}, nil)
			ctx := context.Background()
			buf := make([]byte, 0, s.n)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				op, msg, err := c.ReadMessage(ctx, buf[:0])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.WriteMessage(ctx, op, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNextWriter writes a message in one Write through NextWriter.
func BenchmarkNextWriter(b *testing.B) {
	for _, s := range sizes[:2] {
		b.Run(s.name, func(b *testing.B) {
			c := NewConn(&deadlineStream{loopStream{data: []byte{0}}}, Server, Setup{}, nil)
			ctx := context.Background()
			p := make([]byte, s.n)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				w, err := c.NextWriter(ctx, frame.OpBinary)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(p); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIdleConn measures what 1,000 idle server connections over loopback TCP hold, each
// a Conn that has echoed one message and waits in ReadMessage for the next: connB/conn is the
// live heap the Conn adds to its socket, sockB/conn the heap of the socket itself (half of a
// connected pair: the ends weigh the same), and stackB/conn the goroutine stacks in use. An
// idle connection's heap is connB plus sockB.
func BenchmarkIdleConn(b *testing.B) {
	const n = 1000
	msg := frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpBinary, Masked: true}, []byte("ping"))
	var ms runtime.MemStats
	// The runtime keeps the goroutines it has made for reuse, on the heap: made once here,
	// they are not counted as the connections' own.
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Add(n)
	for range n {
		go func() {
			defer wg.Done()
			<-start
		}()
	}
	close(start)
	wg.Wait()
	for b.Loop() {
		wstest.CheckGoroutines(b)
		base := wstest.LiveHeap()
		clients := make([]*net.TCPConn, n)
		servers := make([]*net.TCPConn, n)
		for i := range n {
			clients[i], servers[i] = wstest.TCPPair(b)
		}
		sockets := wstest.LiveHeap()
		runtime.ReadMemStats(&ms)
		stack := ms.StackInuse
		conns := make([]*Conn, n)
		for i, nc := range servers {
			c := NewConn(nc, Server, Setup{}, nil)
			conns[i] = c
			go serveEcho(c)
		}
		echo := make([]byte, len(msg)-4)
		for _, nc := range clients {
			if _, err := nc.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(nc, echo); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // for the last echoes' goroutines to wait again
		idle := wstest.LiveHeap()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(int64(idle)-int64(sockets))/n, "connB/conn")
		b.ReportMetric(float64(int64(sockets)-int64(base))/(2*n), "sockB/conn")
		b.ReportMetric(float64(int64(ms.StackInuse)-int64(stack))/n, "stackB/conn")
		for i := range n {
			conns[i].CloseNow()
			clients[i].Close()
		}
	}
}

var _ io.ReadWriteCloser = (*loopStream)(nil)

// TestSteadyStateAllocs checks the package's promise that steady-state reads and writes
// allocate nothing, which the pools of buffers, reader state, batches and vector writers keep:
// each call below is made once to warm up, and then must allocate nothing on average.
func TestSteadyStateAllocs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		op   func(t *testing.T) func()
	}{
		{"RecvFrame/16B", recvOp(16)},
		{"RecvFrame/64KiB", recvOp(65535)},
		{"ReadMessage/1KiB", func(t *testing.T) func() {
			c := NewConn(masked(1024), Server, Setup{}, nil)
			buf := make([]byte, 0, 1024)
			return func() {
				if _, _, err := c.ReadMessage(ctx, buf[:0]); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"SendBinary/server/16B", sendOp(Server, 16)},
		{"SendBinary/server/64KiB", sendOp(Server, 65535)},
		{"SendBinary/client/16B", sendOp(Client, 16)},
		{"SendBinary/client/64KiB", sendOp(Client, 65535)},
		{"Echo/16B", func(t *testing.T) func() {
			c := NewConn(&deadlineStream{*masked(16)}, Server, Setup{}, nil)
			buf := make([]byte, 0, 16)
			return func() {
				op, msg, err := c.ReadMessage(ctx, buf[:0])
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.WriteMessage(ctx, op, msg); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.op(t)
			f()
			// The race detector makes sync.Pool drop a share of what it is given.
			if allocs := testing.AllocsPerRun(200, f); allocs > 0 && !raceEnabled {
				t.Errorf("%.2f allocations per call", allocs)
			}
		})
	}
}

func recvOp(n int) func(t *testing.T) func() {
	return func(t *testing.T) func() {
		c := NewConn(masked(n), Server, Setup{}, nil)
		return func() {
			if _, err := c.RecvFrame(0); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func sendOp(role Role, n int) func(t *testing.T) func() {
	return func(t *testing.T) func() {
		c := NewConn(&deadlineStream{loopStream{data: []byte{0}}}, role, Setup{}, nil)
		p := make([]byte, n)
		return func() {
			if _, err := c.SendBinary(p); err != nil {
				t.Fatal(err)
			}
		}
	}
}
