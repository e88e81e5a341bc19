package transport

import (
	"testing"

	"github.com/ecows/ecows/frame"
)

func TestPrepared(t *testing.T) {
	if _, err := NewPrepared(frame.OpPing, nil); err != ErrOpcode {
		t.Fatalf("ping: %v", err)
	}
	if _, err := NewPrepared(frame.OpText, []byte{0xff}); err != frame.ErrInvalidUTF8 {
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
