package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// netPipe returns two NetConns over a client and a server Conn joined by TCP.
func netPipe(t *testing.T, op frame.Opcode) (c1, c2 net.Conn, stop func(), err error) {
	a, b := wstest.TCPPair(t)
	opts := &Options{CloseTimeout: 2 * time.Second}
	client, server := NewConn(a, Client, Setup{}, opts), NewConn(b, Server, Setup{}, opts)
	c1 = NetConn(context.Background(), client, op)
	c2 = NetConn(context.Background(), server, op)
	return c1, c2, func() { client.CloseNow(); server.CloseNow() }, nil
}

func TestNetConnConformance(t *testing.T) {
	wstest.CheckGoroutines(t)
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) { return netPipe(t, frame.OpBinary) })
}

func TestNetConnPartialReads(t *testing.T) {
	wstest.CheckGoroutines(t)
	a, b := wstest.TCPPair(t)
	client, server := NewConn(a, Client, Setup{}, nil), NewConn(b, Server, Setup{}, nil)
	nc := NetConn(context.Background(), server, frame.OpBinary)
	defer nc.Close()
	defer client.CloseNow() // first, so that Close does not wait for its answer
	big := bytes.Repeat([]byte("0123456789"), 1000)
	for _, m := range [][]byte{big, {}, []byte("tail")} { // the empty message is skipped
		if _, err := client.WriteMessage(context.Background(), frame.OpBinary, m); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	buf := make([]byte, 7) // smaller than the message, and not a divisor of it
	for len(got) < len(big)+4 {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		if n == 0 {
			t.Fatal("Read returned 0 bytes without an error")
		}
		got = append(got, buf[:n]...)
	}
	mustEqual(t, got, append(append([]byte(nil), big...), "tail"...))
}

func TestNetConnWriteIsOneMessage(t *testing.T) {
	for _, op := range []frame.Opcode{frame.OpBinary, frame.OpText} {
		t.Run(op.String(), func(t *testing.T) {
			wstest.CheckGoroutines(t)
			a, b := wstest.TCPPair(t)
			client, server := NewConn(a, Client, Setup{}, nil), NewConn(b, Server, Setup{}, nil)
			nc := NetConn(context.Background(), client, op)
			defer nc.Close()
			defer server.CloseNow()
			for _, m := range []string{"one", "two, longer", ""} {
				if n, err := nc.Write([]byte(m)); n != len(m) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", m, n, err)
				}
				gotOp, got, err := server.ReadMessage(context.Background(), nil)
				if err != nil || gotOp != op || string(got) != m {
					t.Fatalf("peer got %v %q %v, want %v %q", gotOp, got, err, op, m)
				}
			}
		})
	}
}

func TestNetConnEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		end   func(peer *Conn)
		check func(t *testing.T, err error)
	}{
		{"normal close is EOF", func(p *Conn) { p.Close(frame.CloseNormal, "") }, func(t *testing.T, err error) {
			if err != io.EOF {
				t.Fatalf("Read: %v, want io.EOF", err)
			}
		}},
		{"going away is EOF", func(p *Conn) { p.Close(frame.CloseGoingAway, "") }, func(t *testing.T, err error) {
			if err != io.EOF {
				t.Fatalf("Read: %v, want io.EOF", err)
			}
		}},
		{"other codes are errors", func(p *Conn) { p.Close(frame.CloseTryAgainLater, "busy") }, func(t *testing.T, err error) {
			if CloseStatus(err) != frame.CloseTryAgainLater {
				t.Fatalf("Read: %v, want close 1013", err)
			}
		}},
		{"wrong message type", func(p *Conn) {
			p.WriteMessage(context.Background(), frame.OpText, []byte("text"))
			p.ReadMessage(context.Background(), nil)
		}, func(t *testing.T, err error) {
			var pe *frame.ProtocolError
			if !errors.As(err, &pe) || pe.Code != frame.CloseUnsupportedData {
				t.Fatalf("Read: %v, want a ProtocolError with 1003", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			a, b := wstest.TCPPair(t)
			opts := &Options{CloseTimeout: 2 * time.Second}
			client, server := NewConn(a, Client, Setup{}, opts), NewConn(b, Server, Setup{}, opts)
			nc := NetConn(context.Background(), client, frame.OpBinary)
			go tc.end(server)
			_, err := nc.Read(make([]byte, 16))
			tc.check(t, err)
			if _, again := nc.Read(make([]byte, 16)); again != err {
				t.Fatalf("second Read: %v, want the same %v", again, err)
			}
			if err := nc.Close(); err != nil {
				t.Fatalf("Close after the end: %v", err)
			}
			if err := nc.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
			server.CloseNow()
		})
	}
}

func TestNetConnCloseRunsHandshake(t *testing.T) {
	wstest.CheckGoroutines(t)
	a, b := wstest.TCPPair(t)
	client, server := NewConn(a, Client, Setup{}, nil), NewConn(b, Server, Setup{}, nil)
	nc := NetConn(context.Background(), client, frame.OpBinary)
	res := make(chan error, 1)
	go func() {
		_, _, err := server.ReadMessage(context.Background(), nil)
		res <- err
	}()
	if err := nc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-res; CloseStatus(err) != frame.CloseNormal {
		t.Fatalf("the peer saw %v, want close 1000", err)
	}
	if _, err := nc.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := nc.Read(make([]byte, 4)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestNetConnContextCloses(t *testing.T) {
	wstest.CheckGoroutines(t)
	a, b := wstest.TCPPair(t)
	client, server := NewConn(a, Client, Setup{}, nil), NewConn(b, Server, Setup{}, nil)
	defer server.CloseNow()
	ctx, cancel := context.WithCancel(context.Background())
	nc := NetConn(ctx, client, frame.OpBinary)
	res := make(chan error, 1)
	go func() {
		_, err := nc.Read(make([]byte, 4))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-res:
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read after ctx ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5 s after ctx ended")
	}
	nc.Close()
}

func TestNetConnBadOpcode(t *testing.T) {
	client, server := connPair(t, false, nil)
	nc := NetConn(context.Background(), client, frame.OpPing)
	defer nc.Close()
	defer server.CloseNow()
	if _, err := nc.Read(make([]byte, 4)); err != ErrOpcode {
		t.Fatalf("Read: %v", err)
	}
	if _, err := nc.Write([]byte("x")); !errors.Is(err, ErrOpcode) {
		t.Fatalf("Write: %v", err)
	}
}
