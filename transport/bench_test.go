package transport

import (
	"context"
	"io"
	"testing"

	"github.com/ecows/ecows/frame"
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

var sizes = []struct {
	name string
	n    int
}{{"16B", 16}, {"1KiB", 1024}, {"64KiB", 65535}}

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
	for _, role := range []Role{Server, Client} {
		for _, s := range sizes {
			b.Run(role.String()+"/"+s.name, func(b *testing.B) {
				c := NewConn(&loopStream{data: []byte{0}}, role, Setup{}, nil)
				p := make([]byte, s.n)
				b.SetBytes(int64(s.n))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.SendBinary(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

var _ io.ReadWriteCloser = (*loopStream)(nil)
