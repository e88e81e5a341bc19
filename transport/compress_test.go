package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// TestDeflateConformance is what Autobahn's groups 12 and 13 check, for both roles and every
// combination of context takeover and window limit that a handshake can agree on: messages of
// many sizes and kinds, compressed by a compress/flate peer and fragmented at several sizes,
// must come out of every read API intact; messages the Conn sends, by every write API, must
// inflate to the original with the peer's window kept as the agreement says, RSV1 on their
// first frame only. (internal/conformance checks that no back-reference reaches past a window
// limit.)
func TestDeflateConformance(t *testing.T) {
	agreements := []DeflateParams{
		{}, // context takeover both ways
		{NoContextTakeover: true, PeerNoContextTakeover: true},
		{NoContextTakeover: true},
		{PeerNoContextTakeover: true},
		{MaxWindowBits: 15},
		{MaxWindowBits: 8},
		{MaxWindowBits: 10, PeerNoContextTakeover: true},
		{MaxWindowBits: 12, NoContextTakeover: true},
	}
	sizes := []int{0, 16, 64, 125, 126, 256, 1024, 4096, 8192, 16384, 32768, 65535, 65536, 131072}
	frags := []int{0, 256, 4096, 1000}
	for _, role := range []Role{Server, Client} {
		for _, d := range agreements {
			t.Run(fmt.Sprintf("%v/%+v", role, d), func(t *testing.T) {
				t.Parallel()
				c, p := zPair(t, role, d, zOpts())
				in := newPeerDeflate(flate.BestSpeed, !d.PeerNoContextTakeover)
				out := &peerInflate{keep: !d.NoContextTakeover}
				i := 0
				for _, kind := range []int{0, 1, 2} {
					for _, n := range sizes {
						msg := testData(kind, n, uint64(i))
						op := frame.OpBinary
						if kind == 0 {
							op = frame.OpText
						}
						// Peer to Conn.
						wire := p.zframes(op, in.compress(msg), frags[i%len(frags)])
						go p.nc.Write(wire)
						gotOp, got, err := zReadWith(c, i%3)
						if err != nil || gotOp != op || !bytes.Equal(got, msg) {
							t.Fatalf("message %d (%d bytes, kind %d) read with API %d: op %v, %d bytes, %v", i, n, kind, i%3, gotOp, len(got), err)
						}
						// Conn to peer.
						errc := make(chan error, 1)
						go func() { errc <- zWriteWith(c, i%3, op, msg) }()
						gotOp, payload, compressed, err := p.readMessage()
						if err != nil || gotOp != op || !compressed {
							t.Fatalf("message %d sent with API %d: op %v, compressed %v, %v", i, i%3, gotOp, compressed, err)
						}
						if err := <-errc; err != nil {
							t.Fatalf("message %d: write: %v", i, err)
						}
						got, err = out.inflate(payload)
						if err != nil || !bytes.Equal(got, msg) {
							t.Fatalf("message %d (%d bytes) inflates to %d bytes, %v", i, n, len(got), err)
						}
						i++
					}
				}
			})
		}
	}
}

// zReadWith reads one message with ReadMessage, NextReader or RecvFrame.
func zReadWith(c *Conn, api int) (frame.Opcode, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch api {
	case 0:
		return c.ReadMessage(ctx, nil)
	case 1:
		op, r, err := c.NextReader(ctx)
		if err != nil {
			return 0, nil, err
		}
		var b []byte
		buf := make([]byte, 1000)
		for {
			n, err := r.Read(buf)
			b = append(b, buf[:n]...)
			if err == io.EOF {
				return op, b, nil
			}
			if err != nil {
				return op, b, err
			}
		}
	}
	var op frame.Opcode
	var b []byte
	for first := true; ; first = false {
		f, err := c.RecvFrame(10 * time.Second)
		if err != nil {
			return 0, nil, err
		}
		if first {
			if !f.Rsv1 {
				return 0, nil, errors.New("first frame without Rsv1")
			}
			op = f.Opcode
		} else if f.Rsv1 || f.Opcode != frame.OpContinuation {
			return 0, nil, fmt.Errorf("later frame %+v", f.Header)
		}
		if int(f.Length) != len(f.Payload) {
			return 0, nil, fmt.Errorf("Length %d for %d bytes", f.Length, len(f.Payload))
		}
		b = append(b, f.Payload...)
		if f.Fin {
			return op, b, nil
		}
	}
}

// zWriteWith sends one message with WriteMessage, NextWriter, or SendText/SendBinary when it
// fits one frame.
func zWriteWith(c *Conn, api int, op frame.Opcode, msg []byte) error {
	switch {
	case api == 1:
		w, err := c.NextWriter(context.Background(), op)
		if err != nil {
			return err
		}
		for p := msg; len(p) > 0; {
			k := min(len(p), 3000)
			if _, err := w.Write(p[:k]); err != nil {
				w.Close()
				return err
			}
			p = p[k:]
		}
		return w.Close()
	case api == 2 && int64(len(msg)) <= c.MaxPayloadLen():
		if op == frame.OpText {
			_, err := c.SendText(msg)
			return err
		}
		_, err := c.SendBinary(msg)
		return err
	}
	_, err := c.WriteMessage(context.Background(), op, msg)
	return err
}

// TestDeflateRFCExamples inflates the payloads of RFC 7692 section 7.2.3, each sent as it is
// there: one block, a window shared with the previous message, a stored block, a block with
// BFINAL set followed by the start of an empty stored block, and two blocks in one message.
func TestDeflateRFCExamples(t *testing.T) {
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	tests := []struct {
		name     string
		d        DeflateParams
		payloads [][]byte
		frag     int
	}{
		{"one block", DeflateParams{PeerNoContextTakeover: true}, [][]byte{hello}, 0},
		{"one block fragmented", DeflateParams{PeerNoContextTakeover: true}, [][]byte{hello}, 3},
		{"shared window", DeflateParams{}, [][]byte{hello, {0xf2, 0x00, 0x11, 0x00, 0x00}}, 0},
		{"shared window fragmented", DeflateParams{}, [][]byte{hello, {0xf2, 0x00, 0x11, 0x00, 0x00}}, 1},
		{"stored block", DeflateParams{PeerNoContextTakeover: true}, [][]byte{{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}}, 0},
		{"BFINAL then a new stream", DeflateParams{}, [][]byte{{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, hello, {0xf2, 0x00, 0x11, 0x00, 0x00}}, 0},
		{"BFINAL fragmented", DeflateParams{}, [][]byte{{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, hello}, 2},
		{"BFINAL without context", DeflateParams{PeerNoContextTakeover: true}, [][]byte{{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, hello}, 0},
		{"two blocks", DeflateParams{}, [][]byte{{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}}, 0},
		{"two blocks fragmented", DeflateParams{PeerNoContextTakeover: true}, [][]byte{{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := zPair(t, Server, tt.d, zOpts())
			defer c.CloseNow()
			for i, payload := range tt.payloads {
				p.write(p.zframes(frame.OpText, payload, tt.frag))
				op, msg, err := zReadWith(c, i%3)
				if err != nil || op != frame.OpText || string(msg) != "Hello" {
					t.Fatalf("message %d: %v %q %v", i, op, msg, err)
				}
			}
		})
	}
}

// TestDeflateEmptyPayload takes a compressed message with no payload byte, in one frame or
// two, as an empty message, as zlib-based receivers do, without disturbing the window.
func TestDeflateEmptyPayload(t *testing.T) {
	for _, d := range []DeflateParams{{}, {PeerNoContextTakeover: true}} {
		for _, frag := range []bool{false, true} {
			c, p := zPair(t, Server, d, zOpts())
			in := newPeerDeflate(flate.BestSpeed, !d.PeerNoContextTakeover)
			p.write(p.zframes(frame.OpBinary, in.compress([]byte("before")), 0))
			if frag {
				p.write(frame.AppendFrame(nil, frame.Header{Rsv1: true, Opcode: frame.OpBinary, Masked: true}, nil))
				p.write(p.frame(true, frame.OpContinuation, nil))
			} else {
				p.write(p.zframes(frame.OpBinary, nil, 0))
			}
			p.write(p.zframes(frame.OpBinary, in.compress([]byte("before and after")), 0))
			for i, want := range []string{"before", "", "before and after"} {
				_, msg, err := zReadWith(c, i%3)
				if err != nil || string(msg) != want {
					t.Fatalf("%+v frag %v message %d: %q %v", d, frag, i, msg, err)
				}
			}
			c.CloseNow()
		}
	}
}

// TestDeflateContextTakeover checks that context takeover is used when agreed: a message sent
// again refers to its first copy and shrinks to a few bytes; and that it is not otherwise.
func TestDeflateContextTakeover(t *testing.T) {
	msg := testData(0, 2000, 7)
	for _, d := range []DeflateParams{{}, {NoContextTakeover: true}, {MaxWindowBits: 14}} {
		c, p := zPair(t, Client, d, zOpts())
		var sizes []int
		for range 2 {
			go c.WriteMessage(context.Background(), frame.OpText, msg)
			_, payload, _, err := p.readMessage()
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(payload))
		}
		takeover := sizes[1] < sizes[0]/2
		if takeover != !d.NoContextTakeover {
			t.Errorf("%+v: compressed sizes %v", d, sizes)
		}
		c.CloseNow()
	}
}

// TestDeflateThresholdAndSwitch sends short messages, SendFrame's and those sent after
// SetCompression(false) uncompressed, and the rest compressed.
func TestDeflateThresholdAndSwitch(t *testing.T) {
	c, p := zPair(t, Server, DeflateParams{NoContextTakeover: true}, &Options{})
	long := testData(2, DefaultCompressionThreshold, 1)
	short := long[:DefaultCompressionThreshold-1]
	steps := []struct {
		send       func() error
		compressed bool
	}{
		{func() error { _, err := c.WriteMessage(context.Background(), frame.OpBinary, short); return err }, false},
		{func() error { _, err := c.WriteMessage(context.Background(), frame.OpBinary, long); return err }, true},
		{func() error { _, err := c.SendBinary(long); return err }, true},
		{func() error { _, err := c.SendFrame(true, frame.OpBinary, long); return err }, false},
		{func() error { return zWriteWith(c, 1, frame.OpBinary, short) }, false},
		{func() error { return zWriteWith(c, 1, frame.OpBinary, long) }, true},
		{func() error {
			c.SetCompression(false)
			_, err := c.WriteMessage(context.Background(), frame.OpBinary, long)
			return err
		}, false},
		{func() error { return zWriteWith(c, 1, frame.OpBinary, long) }, false},
		{func() error { c.SetCompression(true); return zWriteWith(c, 1, frame.OpBinary, long) }, true},
	}
	for i, s := range steps {
		errc := make(chan error, 1)
		go func() { errc <- s.send() }()
		_, payload, compressed, err := p.readMessage()
		if err != nil || compressed != s.compressed {
			t.Fatalf("step %d: compressed %v, %v", i, compressed, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if compressed {
			payload, err = (&peerInflate{}).inflate(payload)
		}
		if err != nil || len(payload) < len(short) {
			t.Fatalf("step %d: %d bytes, %v", i, len(payload), err)
		}
	}
	// Without an agreement, SetCompression does nothing and nothing is compressed.
	plain, p2 := rawPair(t, Server, &Options{Compression: &CompressionOptions{Threshold: -1}})
	plain.SetCompression(true)
	go plain.WriteMessage(context.Background(), frame.OpBinary, long)
	if _, _, compressed, err := p2.readMessage(); compressed || err != nil {
		t.Fatalf("without agreement: compressed %v, %v", compressed, err)
	}
}

// TestDeflateFragmentsAtMaxPayloadLen fragments the compressed bytes, not the message, at
// MaxPayloadLen, and a message whose compression outgrows the limit still goes out with
// SendBinary, in two frames.
func TestDeflateFragmentsAtMaxPayloadLen(t *testing.T) {
	opts := zOpts()
	opts.MaxPayloadLen = 1000
	c, p := zPair(t, Client, DeflateParams{NoContextTakeover: true}, opts)
	for _, msg := range [][]byte{testData(1, 5000, 1), testData(1, 1000, 2)} {
		errc := make(chan error, 1)
		go func() {
			if len(msg) <= 1000 {
				_, err := c.SendBinary(msg)
				errc <- err
				return
			}
			_, err := c.WriteMessage(context.Background(), frame.OpBinary, msg)
			errc <- err
		}()
		var payload []byte
		frames := 0
		for {
			f, err := p.read()
			if err != nil || f.Length > 1000 || f.Rsv1 != (frames == 0) {
				t.Fatalf("frame %d: %+v %v", frames, f.Header, err)
			}
			frames++
			payload = append(payload, f.Payload...)
			if f.Fin {
				break
			}
		}
		if err := <-errc; err != nil || frames != (len(payload)+999)/1000 || len(msg) == 1000 && frames != 2 {
			t.Fatalf("%d bytes compressed to %d in %d frames: %v", len(msg), len(payload), frames, err)
		}
		if got, err := (&peerInflate{}).inflate(payload); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("inflated %d bytes, %v", len(got), err)
		}
	}
}
