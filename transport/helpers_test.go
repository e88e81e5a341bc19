package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// connPair returns a client and a server Conn joined over TCP or net.Pipe.
func connPair(t testing.TB, pipe bool, opts *Options) (client, server *Conn) {
	t.Helper()
	var a, b net.Conn
	if pipe {
		a, b = net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
	} else {
		a, b = wstest.TCPPair(t)
	}
	return NewConn(a, Client, Setup{}, opts), NewConn(b, Server, Setup{}, opts)
}

// peer is the raw far end of a Conn under test: it writes hand-built bytes and reads frames.
type peer struct {
	t      testing.TB
	nc     net.Conn
	masked bool
}

// rawPair returns a Conn in role and the raw peer facing it (a client peer masks).
func rawPair(t testing.TB, role Role, opts *Options) (*Conn, *peer) {
	a, b := wstest.TCPPair(t)
	return NewConn(a, role, Setup{}, opts), &peer{t: t, nc: b, masked: role == Server}
}

func (p *peer) frame(fin bool, op frame.Opcode, payload []byte) []byte {
	h := frame.Header{Fin: fin, Opcode: op, Masked: p.masked, Key: [4]byte{0xa1, 0xb2, 0xc3, 0xd4}}
	return frame.AppendFrame(nil, h, payload)
}

func (p *peer) send(fin bool, op frame.Opcode, payload []byte) {
	p.write(p.frame(fin, op, payload))
}

func (p *peer) write(b []byte) {
	p.t.Helper()
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("peer write: %v", err)
	}
}

// read returns the next frame the Conn sent, failing the test after 5 s.
func (p *peer) read() (frame.Frame, error) {
	p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	return frame.ReadFrame(p.nc, -1)
}

// expectClose reads frames until a close frame and returns its code.
func (p *peer) expectClose() frame.CloseCode {
	p.t.Helper()
	for {
		f, err := p.read()
		if err != nil {
			p.t.Fatalf("peer waiting for close: %v", err)
		}
		if f.Opcode == frame.OpClose {
			return f.CloseCode()
		}
	}
}

// expectEOF asserts that the Conn closed the stream.
func (p *peer) expectEOF() {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [64]byte
	for {
		_, err := p.nc.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p.t.Fatal("stream still open after 5 s")
		}
		return
	}
}

// serveEcho sends every message on c back until a read or a write fails, as a server whose
// connections the tests measure would.
func serveEcho(c *Conn) {
	var buf []byte
	for {
		op, p, err := c.ReadMessage(context.Background(), buf[:0])
		if err != nil {
			return
		}
		if _, err := c.WriteMessage(context.Background(), op, p); err != nil {
			return
		}
		buf = p
	}
}

func mustEqual(t testing.TB, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes %.40q, want %d bytes %.40q", len(got), got, len(want), want)
	}
}
