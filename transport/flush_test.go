package transport

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// countingConn counts the writes made to a net.Conn.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// echoPair returns a server Conn over a counting TCP stream and the raw client peer facing it.
func echoPair(t *testing.T, opts *Options) (*Conn, *countingConn, *peer) {
	a, b := wstest.TCPPair(t)
	cc := &countingConn{Conn: a}
	return NewConn(cc, Server, Setup{}, opts), cc, &peer{t: t, nc: b, masked: true}
}

// echoMessages reads n messages on c and writes each back as it comes.
func echoMessages(t *testing.T, c *Conn, n int) {
	t.Helper()
	for range n {
		op, msg, err := c.ReadMessage(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCoalescing sends 16 messages in one write and checks that the 16 echoes come back in
// order, in fewer writes than messages, and one write each when FlushDelay is negative. The
// delay is long, so that a busy machine pausing the loop cannot fire the timer.
func TestCoalescing(t *testing.T) {
	for _, tc := range []struct {
		delay     time.Duration
		maxWrites int64
	}{{time.Hour, 2}, {-1, 16}} {
		t.Run(fmt.Sprint(tc.delay), func(t *testing.T) {
			server, cc, p := echoPair(t, &Options{FlushDelay: tc.delay})
			var batch []byte
			for i := range 16 {
				batch = append(batch, p.frame(true, frame.OpText, fmt.Appendf(nil, "message %d", i))...)
			}
			p.write(batch)
			echoMessages(t, server, 16)
			for i := range 16 {
				f, err := p.read()
				if err != nil {
					t.Fatal(err)
				}
				mustEqual(t, f.Payload, fmt.Appendf(nil, "message %d", i))
			}
			if n := cc.writes.Load(); n > tc.maxWrites || tc.delay < 0 && n != 16 {
				t.Errorf("16 echoes took %d writes, want at most %d", n, tc.maxWrites)
			}
		})
	}
}

// TestFlushDelay checks that a reply gathered while more input waits goes out after
// FlushDelay even though the reader never comes back for that input.
func TestFlushDelay(t *testing.T) {
	wstest.CheckGoroutines(t)
	server, cc, p := echoPair(t, &Options{FlushDelay: 5 * time.Millisecond})
	p.write(append(p.frame(true, frame.OpText, []byte("first")), p.frame(true, frame.OpText, []byte("second"))...))
	if _, msg, err := server.ReadMessage(context.Background(), nil); err != nil || string(msg) != "first" {
		t.Fatalf("%q %v", msg, err)
	}
	if !server.is(moreIn) {
		t.Fatal("the second message is not seen as waiting")
	}
	if _, err := server.SendText([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load(); n != 0 {
		t.Fatalf("the reply went out at once (%d writes): nothing was gathered", n)
	}
	f, err := p.read() // the server does not read again
	if err != nil || string(f.Payload) != "reply" {
		t.Fatalf("%q %v", f.Payload, err)
	}
	server.CloseNow()
}

// TestCloseNowSendsBatch checks that CloseNow sends the gathered frames before it closes.
func TestCloseNowSendsBatch(t *testing.T) {
	server, _, p := echoPair(t, &Options{FlushDelay: time.Hour})
	p.write(append(p.frame(true, frame.OpBinary, []byte("a")), p.frame(true, frame.OpBinary, []byte("b"))...))
	if _, _, err := server.ReadMessage(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"x", "y"} {
		if _, err := server.SendBinary([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	server.CloseNow()
	for _, m := range []string{"x", "y"} {
		if f, err := p.read(); err != nil || string(f.Payload) != m {
			t.Fatalf("%q %v, want %q", f.Payload, err, m)
		}
	}
	p.expectEOF()
}

// TestBatchBeforeLargeFrame checks the order of a gathered batch and a frame too large for the
// write buffer, which goes out in one writev behind it, from a server and from a client.
func TestBatchBeforeLargeFrame(t *testing.T) {
	for _, role := range []Role{Server, Client} {
		t.Run(role.String(), func(t *testing.T) {
			c, p := rawPair(t, role, &Options{FlushDelay: time.Hour})
			p.write(append(p.frame(true, frame.OpBinary, []byte("a")), p.frame(true, frame.OpBinary, []byte("b"))...))
			if _, _, err := c.ReadMessage(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			large := make([]byte, 3*DefaultWriteBufferSize)
			for i := range large {
				large[i] = byte(i)
			}
			if _, err := c.SendBinary([]byte("small")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.SendBinary(large); err != nil {
				t.Fatal(err)
			}
			for _, want := range [][]byte{[]byte("small"), large} {
				f, err := p.read()
				if err != nil {
					t.Fatal(err)
				}
				mustEqual(t, f.Payload, want)
			}
		})
	}
}

// TestSlowTurnsWriteAtOnce checks that a handler that works after its reply, with more of a
// burst waiting, does not have its later replies held: once one turn took FlushDelay or more,
// each reply goes out within its own write call. Once the handler comes straight back again,
// replies are gathered again.
func TestSlowTurnsWriteAtOnce(t *testing.T) {
	const delay = 200 * time.Millisecond
	server, cc, p := echoPair(t, &Options{FlushDelay: delay})
	burst := func(n int) {
		var b []byte
		for i := range n {
			b = append(b, p.frame(true, frame.OpText, fmt.Appendf(nil, "m%d", i))...)
		}
		p.write(b)
	}
	burst(4)
	for i := range 4 {
		if _, msg, err := server.ReadMessage(context.Background(), nil); err != nil || string(msg) != fmt.Sprintf("m%d", i) {
			t.Fatalf("%q %v", msg, err)
		}
		before := cc.writes.Load()
		if _, err := server.SendText([]byte("reply")); err != nil {
			t.Fatal(err)
		}
		if i > 0 && cc.writes.Load() == before {
			t.Fatalf("reply %d was held after a slow turn", i)
		}
		time.Sleep(delay + delay/2) // the handler's work
	}
	for range 4 {
		if _, err := p.read(); err != nil {
			t.Fatal(err)
		}
	}
	// Quick turns: the replies to a burst are gathered again.
	burst(16)
	before := cc.writes.Load()
	echoMessages(t, server, 16)
	for range 16 {
		if _, err := p.read(); err != nil {
			t.Fatal(err)
		}
	}
	if n := cc.writes.Load() - before; n > 4 {
		t.Errorf("16 quick echoes took %d writes", n)
	}
}
