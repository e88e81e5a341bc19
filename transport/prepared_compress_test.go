package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/ecows/ecows/frame"
)

// frameSink is a stream that keeps what a Conn writes and reads nothing.
type frameSink struct{ bytes.Buffer }

func (s *frameSink) Read([]byte) (int, error) { return 0, io.EOF }
func (s *frameSink) Close() error             { return nil }

// TestPreparedCompressedOnce broadcasts one Prepared to 1,000 server Conns without context
// takeover: it is compressed once for all of them (one form made), every Conn sends that form
// (RSV1 set, the same payload), and it inflates to the message. Conns under another window
// make a form of their own.
func TestPreparedCompressedOnce(t *testing.T) {
	msg := testData(0, 4000, 1)
	p, err := NewPrepared(frame.OpText, msg)
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for i := range 1000 {
		s := &frameSink{}
		d := DeflateParams{Enabled: true, NoContextTakeover: true, PeerNoContextTakeover: true}
		c := NewConn(s, Server, Setup{Deflate: d}, nil)
		if _, err := c.WritePrepared(p); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = bytes.Clone(s.Bytes())
		} else if !bytes.Equal(s.Bytes(), first) {
			t.Fatalf("Conn %d sent another form", i)
		}
	}
	if len(p.zs) != 1 {
		t.Fatalf("%d compressions for 1,000 Conns, want 1", len(p.zs))
	}
	f, err := frame.ReadFrame(bytes.NewReader(first), -1)
	if err != nil || !f.Rsv1 || !f.Fin || f.Opcode != frame.OpText || len(f.Payload) >= len(msg)/2 {
		t.Fatalf("frame %+v (%d bytes), %v", f.Header, len(f.Payload), err)
	}
	if got, err := (&peerInflate{}).inflate(f.Payload); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("inflates to %d bytes, %v", len(got), err)
	}
	s := &frameSink{}
	d := DeflateParams{Enabled: true, NoContextTakeover: true, MaxWindowBits: 10}
	if _, err := NewConn(s, Server, Setup{Deflate: d}, nil).WritePrepared(p); err != nil || len(p.zs) != 2 {
		t.Fatalf("a 10-bit window: %v, %d forms", err, len(p.zs))
	}
}

// TestPreparedCompressedTakeover sends Prepared messages to Conns that keep their context, in
// both roles: with the shared form, the message still enters the Conn's window (a message sent
// after it that repeats it shrinks to a few bytes, and inflates with the peer's window); with
// PreparedOwnContext, a Prepared sent twice shrinks the second time. Every message inflates
// as the peer, keeping its window, sees it.
func TestPreparedCompressedTakeover(t *testing.T) {
	msg := testData(0, 3000, 2)
	for _, role := range []Role{Server, Client} {
		for _, own := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/own=%v", role, own), func(t *testing.T) {
				p, _ := NewPrepared(frame.OpText, msg)
				opts := zOpts()
				opts.Compression.PreparedOwnContext = own
				c, peer := zPair(t, role, DeflateParams{}, opts)
				defer c.CloseNow()
				in := &peerInflate{keep: true}
				var sizes []int
				for i, send := range []func() error{
					func() error { _, err := c.WritePrepared(p); return err },
					func() error { _, err := c.WritePrepared(p); return err },
					func() error { _, err := c.WriteMessage(context.Background(), frame.OpText, msg); return err },
				} {
					errc := make(chan error, 1)
					go func() { errc <- send() }()
					op, payload, compressed, err := peer.readMessage()
					if err != nil || op != frame.OpText || !compressed {
						t.Fatalf("message %d: %v compressed %v, %v", i, op, compressed, err)
					}
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
					if got, err := in.inflate(payload); err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("message %d inflates to %d bytes, %v", i, len(got), err)
					}
					sizes = append(sizes, len(payload))
				}
				if small := sizes[2] < 64; !small {
					t.Fatalf("sizes %v: the message after the Prepared ones did not refer to them", sizes)
				}
				if small := sizes[1] < 64; small != own {
					t.Fatalf("sizes %v: the second Prepared referred to the first: %v", sizes, small)
				}
				if want := 1; !own && len(p.zs) != want {
					t.Fatalf("%d compressions", len(p.zs))
				}
			})
		}
	}
}
