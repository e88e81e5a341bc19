package transport

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

func TestPrepared(t *testing.T) {
	if _, err := NewPrepared(frame.OpPing, nil); err != ErrOpcode {
		t.Fatalf("ping: %v", err)
	}
	if _, err := NewPrepared(frame.OpText, []byte{0xff}); err != ErrInvalidUTF8 {
		t.Fatalf("bad text: %v", err)
	}
	src := []byte("to everyone")
	p, err := NewPrepared(frame.OpText, src)
	if err != nil {
		t.Fatal(err)
	}
	src[0] = 'X' // NewPrepared copied it
	if p.Opcode() != frame.OpText || string(p.Payload()) != "to everyone" {
		t.Fatalf("%v %q", p.Opcode(), p.Payload())
	}
	for _, role := range []Role{Server, Client} {
		c, peer := rawPair(t, role, &Options{MaxPayloadLen: 11})
		for range 2 {
			n, err := c.WritePrepared(p)
			if err != nil || n != 13+4*int(role) {
				t.Fatalf("%v: WritePrepared = %d, %v", role, n, err)
			}
			f, err := peer.read()
			if err != nil || f.Opcode != frame.OpText || !f.Fin || f.Masked != (role == Client) || string(f.Payload) != "to everyone" {
				t.Fatalf("%v: peer read %+v %q %v", role, f.Header, f.Payload, err)
			}
		}
		if st := c.Stats(); st.FramesOut != 2 {
			t.Fatalf("stats %+v", st)
		}
		big, _ := NewPrepared(frame.OpBinary, make([]byte, 12))
		if _, err := c.WritePrepared(big); err != ErrPayloadTooLarge {
			t.Fatalf("over the limit: %v", err)
		}
		c.SendFrame(false, frame.OpText, []byte("a"))
		if _, err := c.WritePrepared(p); err != ErrFragmentOrder {
			t.Fatalf("inside a message: %v", err)
		}
		c.SendFrame(true, frame.OpContinuation, nil)
		c.SendClose(frame.CloseNormal, "")
		if _, err := c.WritePrepared(p); err != ErrClosed {
			t.Fatalf("after close: %v", err)
		}
	}
}

// TestWritePreparedBatch checks that several prepared messages go out in order, in one write
// when they fit the write buffer, and that one over the limit stops the batch before anything
// is sent.
func TestWritePreparedBatch(t *testing.T) {
	for _, role := range []Role{Server, Client} {
		t.Run(role.String(), func(t *testing.T) {
			a, b := wstest.TCPPair(t)
			cc := &countingConn{Conn: a}
			c := NewConn(cc, role, Setup{}, &Options{MaxPayloadLen: 1000})
			peer := &peer{t: t, nc: b, masked: role == Server}
			var ps []*Prepared
			for i := range 10 {
				p, _ := NewPrepared(frame.OpText, fmt.Appendf(nil, "broadcast %d", i))
				ps = append(ps, p)
			}
			if _, err := c.WritePrepared(ps...); err != nil {
				t.Fatal(err)
			}
			if n := cc.writes.Load(); n != 1 {
				t.Errorf("10 small messages took %d writes", n)
			}
			big, _ := NewPrepared(frame.OpBinary, make([]byte, 1001))
			if _, err := c.WritePrepared(ps[0], big); err != ErrPayloadTooLarge {
				t.Fatalf("over the limit: %v", err)
			}
			large, _ := NewPrepared(frame.OpBinary, make([]byte, 999))
			many := append(ps[:0:0], large, large, large, large, large, ps[9]) // more than a buffer
			if _, err := c.WritePrepared(many...); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				f, err := peer.read()
				if err != nil || string(f.Payload) != fmt.Sprintf("broadcast %d", i) {
					t.Fatalf("message %d: %q %v", i, f.Payload, err)
				}
			}
			for i, want := range many {
				f, err := peer.read()
				if err != nil || len(f.Payload) != len(want.Payload()) {
					t.Fatalf("message %d of the second batch: %d bytes, %v", i, len(f.Payload), err)
				}
			}
			peer.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, err := peer.nc.Read(make([]byte, 1)); n != 0 || !isTimeout(err) {
				t.Fatalf("unexpected bytes after the batches: %d %v", n, err)
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func BenchmarkWritePrepared(b *testing.B) {
	p, _ := NewPrepared(frame.OpBinary, make([]byte, 64))
	c := NewConn(&loopStream{data: []byte{0}}, Server, Setup{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.WritePrepared(p); err != nil {
			b.Fatal(err)
		}
	}
}
