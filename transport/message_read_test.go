package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

func TestReadMessage(t *testing.T) {
	c, p := rawPair(t, Server, nil)
	var wire []byte
	wire = append(wire, p.frame(false, frame.OpText, []byte("frag"))...)
	wire = append(wire, p.frame(true, frame.OpPing, []byte("ping-data"))...)
	wire = append(wire, p.frame(false, frame.OpContinuation, nil)...)
	wire = append(wire, p.frame(true, frame.OpContinuation, []byte("mented"))...)
	wire = append(wire, p.frame(true, frame.OpBinary, []byte{1, 2, 3})...)
	p.write(wire)
	buf := make([]byte, 0, 2)
	op, msg, err := c.ReadMessage(context.Background(), buf)
	if err != nil || op != frame.OpText || string(msg) != "fragmented" {
		t.Fatalf("ReadMessage = %v %q %v", op, msg, err)
	}
	pong, err := p.read()
	if err != nil || pong.Opcode != frame.OpPong || string(pong.Payload) != "ping-data" {
		t.Fatalf("pong = %+v %v", pong, err)
	}
	op, msg, err = c.ReadMessage(context.Background(), msg[:0])
	if err != nil || op != frame.OpBinary || !bytes.Equal(msg, []byte{1, 2, 3}) {
		t.Fatalf("ReadMessage = %v %v %v", op, msg, err)
	}
	p.send(true, frame.OpClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})
	_, _, err = c.ReadMessage(context.Background(), nil)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != frame.CloseNormal || ce.Reason != "bye" {
		t.Fatalf("after close: %v", err)
	}
	if got := p.expectClose(); got != frame.CloseNormal {
		t.Fatalf("echoed %d", got)
	}
	p.expectEOF()
}

func TestReadMessageResumesAfterContextTimeout(t *testing.T) {
	c, p := rawPair(t, Client, nil)
	p.write(p.frame(false, frame.OpText, []byte("first half, ")))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, msg, err := c.ReadMessage(ctx, []byte("keep:"))
	if !errors.Is(err, os.ErrDeadlineExceeded) || string(msg) != "keep:" {
		t.Fatalf("ReadMessage = %q, %v", msg, err)
	}
	p.send(true, frame.OpContinuation, []byte("second half"))
	op, msg, err := c.ReadMessage(context.Background(), nil)
	if err != nil || op != frame.OpText || string(msg) != "first half, second half" {
		t.Fatalf("resumed ReadMessage = %v %q %v", op, msg, err)
	}
}

func TestReadMessageCancel(t *testing.T) {
	wstest.CheckGoroutines(t)
	c, _ := rawPair(t, Server, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	_, _, err := c.ReadMessage(ctx, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := c.ReadMessage(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestNextReader(t *testing.T) {
	c, p := rawPair(t, Server, &Options{MaxPayloadLen: 1 << 21, MaxMessageLen: 1 << 22})
	big := bytes.Repeat([]byte("abcdefgh"), 300000)
	go func() {
		p.write(p.frame(false, frame.OpBinary, big[:1<<20]))
		p.write(p.frame(true, frame.OpPing, nil))
		p.write(p.frame(true, frame.OpContinuation, big[1<<20:]))
		p.write(p.frame(true, frame.OpText, []byte("skipped")))
		p.write(p.frame(true, frame.OpText, []byte("next")))
	}()
	op, r, err := c.NextReader(context.Background())
	if err != nil || op != frame.OpBinary {
		t.Fatal(op, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, big)
	if _, err := p.read(); err != nil { // the pong
		t.Fatal(err)
	}
	op, r, err = c.NextReader(context.Background())
	if err != nil || op != frame.OpText {
		t.Fatal(op, err)
	}
	var one [3]byte
	if n, err := r.Read(one[:]); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	_, r2, err := c.NextReader(context.Background()) // discards the rest of "skipped"
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(one[:]); n != 0 || err != io.EOF {
		t.Fatalf("stale reader: %d %v", n, err)
	}
	got, err = io.ReadAll(r2)
	if err != nil || string(got) != "next" {
		t.Fatalf("%q %v", got, err)
	}
}

func TestPingPongHandlers(t *testing.T) {
	var pings, pongs []string
	opts := &Options{
		PingHandler: func(c *Conn, p []byte) error { pings = append(pings, string(p)); return nil },
		PongHandler: func(c *Conn, p []byte) error {
			pongs = append(pongs, string(p))
			if string(p) == "stop" {
				return io.ErrNoProgress
			}
			return nil
		},
	}
	c, p := rawPair(t, Server, opts)
	p.send(true, frame.OpPing, []byte("a"))
	p.send(true, frame.OpPong, []byte("b"))
	p.send(true, frame.OpText, []byte("msg"))
	p.send(true, frame.OpPong, []byte("stop"))
	_, msg, err := c.ReadMessage(context.Background(), nil)
	if err != nil || string(msg) != "msg" {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(context.Background(), nil); err != io.ErrNoProgress {
		t.Fatalf("handler error: %v", err)
	}
	if strings.Join(pings, ",") != "a" || strings.Join(pongs, ",") != "b,stop" {
		t.Fatalf("pings %q pongs %q", pings, pongs)
	}
}

// readMessage100ms is ReadMessage on c bounded to 100 ms.
func readMessage100ms(c *Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := c.ReadMessage(ctx, nil)
	return err
}

// TestTimeoutBoundsEndingCalls checks that a read call with a timeout returns within it even
// when the frame it reads ends the connection and the close handshake still waits for the
// peer (a client waits for the server's FIN; a Conn that refused a frame reads on to the
// peer's close frame): the wait goes on without the caller, and later calls return the same
// error at once.
func TestTimeoutBoundsEndingCalls(t *testing.T) {
	const closeTimeout = 3 * time.Second
	overLimit := frame.AppendHeader(nil, frame.Header{Fin: true, Opcode: frame.OpBinary, Length: 1 << 20, Masked: true})
	for _, tc := range []struct {
		name  string
		role  Role
		input func(p *peer) []byte
		read  func(c *Conn) error
		code  frame.CloseCode
	}{
		{"client RecvFrame, server keeps TCP open after its close", Client,
			func(p *peer) []byte { return p.frame(true, frame.OpClose, []byte{0x03, 0xe8}) },
			func(c *Conn) error {
				f, err := c.RecvFrame(100 * time.Millisecond)
				if err == nil && f.Opcode != frame.OpClose {
					return fmt.Errorf("got %v, want the close frame", f.Opcode)
				}
				return err
			}, frame.CloseNormal},
		{"client ReadMessage, server keeps TCP open after its close", Client,
			func(p *peer) []byte { return p.frame(true, frame.OpClose, []byte{0x03, 0xe8}) },
			readMessage100ms, frame.CloseNormal},
		{"server RecvFrame refuses an oversize header, peer silent", Server,
			func(*peer) []byte { return overLimit },
			func(c *Conn) error { _, err := c.RecvFrame(100 * time.Millisecond); return err },
			frame.CloseMessageTooBig},
		{"server ReadMessage refuses an oversize header, peer silent", Server,
			func(*peer) []byte { return overLimit },
			readMessage100ms, frame.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := rawPair(t, tc.role, &Options{CloseTimeout: closeTimeout})
			p.write(tc.input(p))
			start := time.Now()
			err := tc.read(c)
			if d := time.Since(start); d > closeTimeout/2 {
				t.Fatalf("the call took %v with a 100 ms bound (err %v)", d, err)
			}
			if p.expectClose() != tc.code {
				t.Fatal("wrong close code sent")
			}
			// Later calls return the error that ended the read side at once.
			start = time.Now()
			_, again := c.RecvFrame(100 * time.Millisecond)
			if again == nil || time.Since(start) > closeTimeout/2 {
				t.Fatalf("the next call returned %v after %v", again, time.Since(start))
			}
			if err != nil && CloseStatus(again) != tc.code {
				t.Fatalf("the next call returned %v, want close %d", again, tc.code)
			}
			// The handshake finishes without a caller: the Conn closes its stream once the
			// peer closes, or after CloseTimeout.
			p.nc.Close()
			select {
			case <-c.Done():
			case <-time.After(2 * closeTimeout):
				t.Fatal("the stream was not closed")
			}
		})
	}
}

// TestReadLevelsNotMixed checks that a message begun at one read level is not taken over by
// another, which would drop its bytes: the other level gets ErrReadMixed, nothing is lost, and
// the level that began the message finishes it.
func TestReadLevelsNotMixed(t *testing.T) {
	t.Run("RecvFrame returned a fragment", func(t *testing.T) {
		c, p := rawPair(t, Server, nil)
		p.write(append(p.frame(false, frame.OpText, []byte("hel")), p.frame(true, frame.OpContinuation, []byte("lo"))...))
		p.send(true, frame.OpText, []byte("next"))
		if f, err := c.RecvFrame(5 * time.Second); err != nil || f.Fin || string(f.Payload) != "hel" {
			t.Fatalf("%+v %v", f, err)
		}
		if _, _, err := c.ReadMessage(context.Background(), nil); !errors.Is(err, ErrReadMixed) {
			t.Fatalf("ReadMessage: %v, want ErrReadMixed", err)
		}
		if _, _, err := c.NextReader(context.Background()); !errors.Is(err, ErrReadMixed) {
			t.Fatalf("NextReader: %v, want ErrReadMixed", err)
		}
		if f, err := c.RecvFrame(5 * time.Second); err != nil || !f.Fin || string(f.Payload) != "lo" {
			t.Fatalf("%+v %v", f, err)
		}
		if _, msg, err := c.ReadMessage(context.Background(), nil); err != nil || string(msg) != "next" {
			t.Fatalf("%q %v", msg, err)
		}
	})
	t.Run("RecvFrame timed out inside a frame", func(t *testing.T) {
		c, p := rawPair(t, Server, nil)
		whole := p.frame(true, frame.OpBinary, []byte("0123456789"))
		p.write(whole[:len(whole)-4])
		if _, err := c.RecvFrame(50 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("RecvFrame: %v, want a timeout", err)
		}
		p.write(whole[len(whole)-4:])
		p.send(true, frame.OpBinary, []byte("next"))
		if _, _, err := c.ReadMessage(context.Background(), nil); !errors.Is(err, ErrReadMixed) {
			t.Fatalf("ReadMessage: %v, want ErrReadMixed", err)
		}
		if f, err := c.RecvFrame(5 * time.Second); err != nil || string(f.Payload) != "0123456789" {
			t.Fatalf("%+v %v", f, err)
		}
		if _, msg, err := c.ReadMessage(context.Background(), nil); err != nil || string(msg) != "next" {
			t.Fatalf("%q %v", msg, err)
		}
	})
	t.Run("ReadMessage timed out inside a message", func(t *testing.T) {
		c, p := rawPair(t, Server, nil)
		p.send(false, frame.OpText, []byte("hel"))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, _, err := c.ReadMessage(ctx, nil); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ReadMessage: %v, want a timeout", err)
		}
		p.send(true, frame.OpContinuation, []byte("lo"))
		if _, err := c.RecvFrame(5 * time.Second); !errors.Is(err, ErrReadMixed) {
			t.Fatalf("RecvFrame: %v, want ErrReadMixed", err)
		}
		if _, _, err := c.NextReader(context.Background()); !errors.Is(err, ErrReadMixed) {
			t.Fatalf("NextReader: %v, want ErrReadMixed", err)
		}
		if _, msg, err := c.ReadMessage(context.Background(), []byte("x")); err != nil || string(msg) != "xhello" {
			t.Fatalf("%q %v", msg, err)
		}
	})
}

// TestBuffersFollowBytes checks that a header declaring a large payload commits memory only
// as its bytes arrive, and that a large payload is not kept once its call is over.
func TestBuffersFollowBytes(t *testing.T) {
	opts := &Options{MaxPayloadLen: 16 << 20, MaxMessageLen: 16 << 20}
	declared := func(p *peer) {
		b := p.frame(true, frame.OpBinary, make([]byte, 16<<20))
		p.write(b[:frame.MaxHeaderLen+100]) // the header and 100 bytes of payload; the rest never comes
	}
	t.Run("RecvFrame", func(t *testing.T) {
		c, p := rawPair(t, Server, opts)
		declared(p)
		if _, err := c.RecvFrame(50 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%v, want a timeout", err)
		}
		if n := cap(c.rd.sp.fbuf); n > 64<<10 {
			t.Fatalf("100 bytes of a 16 MiB frame hold a %d-byte buffer", n)
		}
	})
	t.Run("ReadMessage", func(t *testing.T) {
		c, p := rawPair(t, Server, opts)
		declared(p)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, dst, err := c.ReadMessage(ctx, nil)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%v, want a timeout", err)
		}
		if n := cap(dst) + cap(c.rd.sp.partial); n > 64<<10 {
			t.Fatalf("100 bytes of a 16 MiB message hold %d bytes", n)
		}
	})
	t.Run("growth at most doubles", func(t *testing.T) {
		c, p := rawPair(t, Server, opts)
		go p.send(true, frame.OpBinary, make([]byte, 1_000_000))
		_, msg, err := c.ReadMessage(context.Background(), nil)
		if err != nil || len(msg) != 1_000_000 {
			t.Fatalf("%d bytes, %v", len(msg), err)
		}
		if cap(msg) > 2_000_000 {
			t.Fatalf("a 1,000,000-byte message grew a %d-byte buffer", cap(msg))
		}
	})
	t.Run("RecvFrame lets a large payload go", func(t *testing.T) {
		c, p := rawPair(t, Server, opts)
		go func() {
			p.send(true, frame.OpBinary, make([]byte, 1<<20))
			p.send(true, frame.OpBinary, []byte("small"))
		}()
		for _, n := range []int{1 << 20, 5} {
			if f, err := c.RecvFrame(5 * time.Second); err != nil || len(f.Payload) != n {
				t.Fatalf("%d bytes, %v; want %d", len(f.Payload), err, n)
			}
		}
		if sp := c.rd.sp; sp != nil && cap(sp.fbuf) > maxKeptSpill {
			t.Fatalf("a %d-byte frame buffer kept after a 5-byte frame", cap(sp.fbuf))
		}
	})
}

func TestSetReadLimit(t *testing.T) {
	tests := []struct {
		name     string
		opts     int64 // Options.MaxMessageLen
		set      int64 // SetReadLimit's argument, after the first message
		first    int   // a message read before the change
		second   int   // and one after it
		refused  bool  // the second is refused with 1009
		compress bool
	}{
		{name: "lowered", opts: 1000, set: 100, first: 500, second: 500, refused: true},
		{name: "raised", opts: 100, set: 1000, first: 50, second: 500},
		{name: "back to the Options", opts: 100, set: 0, first: 50, second: 500, refused: true},
		{name: "none", opts: 100, set: -1, first: 50, second: 20000},
		{name: "lowered, compressed", opts: 1000, set: 100, first: 500, second: 500, refused: true, compress: true},
		{name: "raised, compressed", opts: 100, set: 1000, first: 50, second: 500, compress: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			opts := &Options{MaxMessageLen: tt.opts, CloseTimeout: time.Second}
			var c *Conn
			var p *peer
			var d *peerDeflate
			if tt.compress {
				opts.Compression = &CompressionOptions{}
				c, p = zPair(t, Server, DeflateParams{NoContextTakeover: true, PeerNoContextTakeover: true}, opts)
				d = newPeerDeflate(flate.BestCompression, false)
			} else {
				c, p = rawPair(t, Server, opts)
			}
			defer c.CloseNow()
			send := func(n int) []byte {
				msg := bytes.Repeat([]byte("a"), n)
				if d != nil {
					p.write(p.zframes(frame.OpBinary, d.compress(msg), 0))
				} else {
					p.send(true, frame.OpBinary, msg)
				}
				return msg
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			want := send(tt.first)
			if _, got, err := c.ReadMessage(ctx, nil); err != nil {
				t.Fatalf("first message: %v", err)
			} else {
				mustEqual(t, got, want)
			}
			c.SetReadLimit(tt.set)
			want = send(tt.second)
			_, got, err := c.ReadMessage(ctx, nil)
			if !tt.refused {
				if err != nil {
					t.Fatalf("second message: %v", err)
				}
				mustEqual(t, got, want)
				return
			}
			if CloseStatus(err) != frame.CloseMessageTooBig {
				t.Fatalf("second message: %v, want 1009", err)
			}
			if code := p.expectClose(); code != frame.CloseMessageTooBig {
				t.Fatalf("peer got close %d, want 1009", code)
			}
			p.send(true, frame.OpClose, []byte{0x03, 0xf1}) // the peer's half of the handshake
			p.expectEOF()
		})
	}
}
