package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// The peer's side of permessage-deflate, built on compress/flate independently of the Conn's
// code: what a conforming peer sends, and how it inflates what the Conn sends.

// deflateTail is what RFC 7692 section 7.2.1 removes from a compressed message; deflateEnd is
// that tail followed by an empty final stored block, which ends a message's DEFLATE stream.
var (
	deflateTail = []byte{0x00, 0x00, 0xff, 0xff}
	deflateEnd  = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}
)

// peerDeflate compresses messages as RFC 7692 section 7.2.1 says, keeping its context between
// messages when takeover is set.
type peerDeflate struct {
	fw       *flate.Writer
	buf      bytes.Buffer
	takeover bool
}

func newPeerDeflate(level int, takeover bool) *peerDeflate {
	d := &peerDeflate{takeover: takeover}
	d.fw, _ = flate.NewWriter(&d.buf, level)
	return d
}

func (d *peerDeflate) compress(p []byte) []byte {
	d.buf.Reset()
	if !d.takeover {
		d.fw.Reset(&d.buf)
	}
	d.fw.Write(p)
	d.fw.Flush()
	b := bytes.Clone(d.buf.Bytes())
	if !bytes.HasSuffix(b, deflateTail) {
		panic("no sync marker")
	}
	return b[:len(b)-4]
}

// peerInflate inflates messages as RFC 7692 section 7.2.2 says, with the previous messages as
// the window when keep is set (the sender may use context takeover).
type peerInflate struct {
	hist []byte
	keep bool
}

func (d *peerInflate) inflate(payload []byte) ([]byte, error) {
	var dict []byte
	if d.keep {
		dict = d.hist
	}
	fr := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(deflateEnd)), dict)
	out, err := io.ReadAll(fr)
	if d.keep {
		d.hist = append(d.hist, out...)
		if len(d.hist) > 1<<15 {
			d.hist = append(d.hist[:0], d.hist[len(d.hist)-1<<15:]...)
		}
	}
	return out, err
}

// zframes encodes a compressed message as frames of at most frag payload bytes (0: one frame),
// RSV1 on the first only, masked when p is a client.
func (p *peer) zframes(op frame.Opcode, payload []byte, frag int) []byte {
	var b []byte
	first := true
	for first || len(payload) > 0 {
		chunk := payload
		if frag > 0 && len(chunk) > frag {
			chunk = chunk[:frag]
		}
		payload = payload[len(chunk):]
		h := frame.Header{Fin: len(payload) == 0, Rsv1: first, Opcode: op, Masked: p.masked, Key: [4]byte{0xa1, 0xb2, 0xc3, 0xd4}}
		if !first {
			h.Opcode = frame.OpContinuation
		}
		b = frame.AppendFrame(b, h, chunk)
		first = false
	}
	return b
}

// readMessage reads the frames of one data message that the Conn sent, checking the bits
// RFC 7692 section 6 sets, and returns its opcode, payload as on the wire, and whether it was
// compressed. Control frames before it are skipped.
func (p *peer) readMessage() (frame.Opcode, []byte, bool, error) {
	var op frame.Opcode
	var payload []byte
	var compressed bool
	for first := true; ; {
		f, err := p.read()
		if err != nil {
			return 0, nil, false, err
		}
		if f.Opcode.IsControl() {
			if f.Rsv1 {
				return 0, nil, false, errors.New("RSV1 on a control frame")
			}
			continue
		}
		if f.Rsv2 || f.Rsv3 || f.Masked != p.masked2() || !first && f.Rsv1 || first != (f.Opcode != frame.OpContinuation) {
			return 0, nil, false, fmt.Errorf("bad frame %+v", f.Header)
		}
		if first {
			op, compressed = f.Opcode, f.Rsv1
		}
		first = false
		payload = append(payload, f.Payload...)
		if f.Fin {
			return op, payload, compressed, nil
		}
	}
}

// masked2 is whether the Conn facing p masks: p masks exactly when the Conn does not.
func (p *peer) masked2() bool { return !p.masked }

// zPair returns a Conn in role with the agreement d, and the raw peer facing it.
func zPair(t testing.TB, role Role, d DeflateParams, opts *Options) (*Conn, *peer) {
	a, b := wstest.TCPPair(t)
	d.Enabled = true
	return NewConn(a, role, Setup{Deflate: d}, opts), &peer{t: t, nc: b, masked: role == Server}
}

// zOpts compresses every message.
func zOpts() *Options {
	return &Options{MaxPayloadLen: 1 << 20, MaxMessageLen: 1 << 20, CloseTimeout: time.Second,
		Compression: &CompressionOptions{Threshold: -1}}
}

// testData returns n bytes of one of three kinds: 0 JSON-like text with multibyte characters
// (valid UTF-8 for any n), 1 random bytes (incompressible), 2 one short line repeated.
func testData(kind, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	var b []byte
	switch kind {
	case 0:
		words := []string{"alpha", "βeta", "gamma", "€uro", "κόσμε", "delta", "\"id\":", "{", "}", "[", "],", "12345", "true"}
		for len(b) < n {
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, ' ')
		}
		for b = b[:n]; !utf8.Valid(b); { // cut at a character boundary
			b = b[:len(b)-1]
		}
		return append(b, bytes.Repeat([]byte{'.'}, n-len(b))...)
	case 1:
		b = make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	return bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), n/44+1)[:n]
}

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

// TestDeflateProtocolViolations closes with the right code: RSV1 where RFC 7692 section 6
// forbids it, data that does not inflate, text that inflates to invalid UTF-8 (detected at the
// fragment that brings it), a compressed frame over MaxPayloadLen, and a compressed message
// whose wire size grows past what any message under MaxMessageLen needs.
func TestDeflateProtocolViolations(t *testing.T) {
	// A message whose first fragment is a complete flushed block: the peer flushed in the
	// middle of the message, so that part inflates before the next fragment arrives.
	var flushed bytes.Buffer
	fw, _ := flate.NewWriter(&flushed, flate.BestSpeed)
	fw.Write([]byte("caf\xc3\x28, an invalid byte"))
	fw.Flush()
	firstPart := bytes.Clone(flushed.Bytes())
	fw.Write(bytes.Repeat([]byte("fine "), 1000))
	fw.Flush()
	badText := flushed.Bytes()[:flushed.Len()-4]
	hello := bytes.Clone(firstPart)
	hello[0] &^= 1 // keep BFINAL clear
	emptyBlocks := bytes.Repeat([]byte{0x00, 0x00, 0x00, 0xff, 0xff}, 1000)
	const limit = 1000
	tests := []struct {
		name  string
		d     DeflateParams
		wire  func(p *peer) []byte
		good  int // frames RecvFrame returns before the error
		err   error
		limit int64
	}{
		{"RSV1 on ping", DeflateParams{}, func(p *peer) []byte {
			return frame.AppendFrame(nil, frame.Header{Fin: true, Rsv1: true, Opcode: frame.OpPing, Masked: p.masked}, nil)
		}, 0, errRSV1, 0},
		{"RSV1 on a continuation", DeflateParams{}, func(p *peer) []byte {
			b := p.zframes(frame.OpText, []byte{0xf2, 0x48}, 0)
			b[0] &^= 0x80 // not final
			return frame.AppendFrame(b, frame.Header{Fin: true, Rsv1: true, Opcode: frame.OpContinuation, Masked: p.masked}, []byte{0xcd})
		}, 1, errRSV1, 0},
		{"RSV2 on a compressed frame", DeflateParams{}, func(p *peer) []byte {
			return frame.AppendFrame(nil, frame.Header{Fin: true, Rsv1: true, Rsv2: true, Opcode: frame.OpText, Masked: p.masked}, []byte{0})
		}, 0, errRSV, 0},
		// 0xff and 0x06 start blocks of the reserved type 11.
		{"garbage", DeflateParams{PeerNoContextTakeover: true}, func(p *peer) []byte { return p.zframes(frame.OpBinary, []byte{0xff, 0xff}, 0) }, 0, errDeflate, 0},
		{"garbage with context", DeflateParams{}, func(p *peer) []byte { return p.zframes(frame.OpBinary, []byte{0x06}, 0) }, 0, errDeflate, 0},
		{"garbage in second fragment", DeflateParams{PeerNoContextTakeover: true}, func(p *peer) []byte {
			return p.zframes(frame.OpBinary, append(bytes.Clone(hello), 0x06), len(hello))
		}, 1, errDeflate, 0},
		{"truncated", DeflateParams{PeerNoContextTakeover: true}, func(p *peer) []byte {
			return p.zframes(frame.OpBinary, newPeerDeflate(9, false).compress(testData(0, 3000, 1))[:100], 0)
		}, 0, errDeflate, 0},
		{"invalid UTF-8", DeflateParams{}, func(p *peer) []byte { return p.zframes(frame.OpText, badText, 0) }, 0, frame.ErrInvalidUTF8, 0},
		{"invalid UTF-8 in first fragment", DeflateParams{}, func(p *peer) []byte {
			return p.zframes(frame.OpText, badText, len(firstPart))[:len(firstPart)+6]
		}, 0, frame.ErrInvalidUTF8, 0},
		{"compressed frame over MaxPayloadLen", DeflateParams{}, func(p *peer) []byte {
			return frame.AppendHeader(nil, frame.Header{Fin: true, Rsv1: true, Opcode: frame.OpBinary, Masked: p.masked, Length: 1<<20 + 1})
		}, 0, frame.ErrTooBig, 0},
		{"endless empty blocks", DeflateParams{}, func(p *peer) []byte { return p.zframes(frame.OpBinary, emptyBlocks, 100) },
			(limit + limit/8 + 1024) / 100, errMessageTooBig, limit},
	}
	for _, tt := range tests {
		for _, role := range []Role{Server, Client} {
			t.Run(tt.name+"/"+role.String(), func(t *testing.T) {
				wstest.CheckGoroutines(t)
				opts := zOpts()
				if tt.limit > 0 {
					opts.MaxMessageLen = tt.limit
				}
				c, p := zPair(t, role, tt.d, opts)
				p.write(tt.wire(p))
				errc := make(chan error, 1)
				go func() {
					for i := 0; ; i++ {
						_, err := c.RecvFrame(5 * time.Second)
						if err != nil || i > tt.good {
							if err == nil {
								err = errors.New("no error")
							} else if i != tt.good {
								err = fmt.Errorf("error after %d frames: %w", i, err)
							}
							errc <- err
							return
						}
					}
				}()
				want := CloseStatus(tt.err)
				if got := p.expectClose(); got != want {
					t.Fatalf("close code %d, want %d", got, want)
				}
				p.send(true, frame.OpClose, []byte{byte(want >> 8), byte(want)})
				if role == Client {
					p.nc.Close()
				}
				if err := <-errc; !errors.Is(err, tt.err) {
					t.Fatalf("RecvFrame: %v, want %v", err, tt.err)
				}
			})
		}
	}
}

// bomb returns DEFLATE data built by hand for the best ratio DEFLATE allows: one dynamic block
// whose literal/length and distance codes have one bit each, so that every byte after the
// 13-byte header, 0x55, is four copies of 258 zero bytes (distance 1). n bytes of it inflate
// to about 1032*n bytes.
func bomb(n int) []byte {
	var acc uint64
	var nb uint
	var out []byte
	put := func(v uint64, k uint) {
		acc |= v << nb
		for nb += k; nb >= 8; nb -= 8 {
			out = append(out, byte(acc))
			acc >>= 8
		}
	}
	put(0, 1)                                                                          // BFINAL 0
	put(2, 2)                                                                          // BTYPE 10: dynamic
	put(29, 5)                                                                         // HLIT: 286 literal/length codes
	put(1, 5)                                                                          // HDIST: 2 distance codes
	put(14, 4)                                                                         // HCLEN: 18 code length codes
	for _, l := range []uint64{0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2} { // 16, 17, 18, 0, 8, ..., 1
		put(l, 3)
	}
	// Code length codes: 18 -> "0", 1 -> "10", 17 -> "11" (sent bit-reversed, LSB first).
	one, c17, c18 := func() { put(1, 2) }, func(x uint64) { put(3, 2); put(x, 3) }, func(x uint64) { put(0, 1); put(x, 7) }
	one()     // literal 0: length 1
	c18(127)  // literals 1-138: none
	c18(127)  // 139-276
	c17(5)    // 277-284
	one()     // 285 (length 258): length 1
	one()     // distance 0 (distance 1)
	one()     // distance 1
	put(0, 2) // two literal zeros ("0"), to give the window its first byte and align
	put(1, 2) // length 258 ("1"), distance 1 ("0")
	for range n {
		out = append(out, 0x55)
	}
	return out
}

// TestDeflateBomb refuses with 1009 a compressed message whose first 1 KiB frame inflates past
// MaxMessageLen (the message would inflate to 1 GiB), for each read API and with the whole
// bomb in one frame too, while the heap stays small: the limit is checked as it inflates.
func TestDeflateBomb(t *testing.T) {
	if got, _ := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(bomb(1000))), 2<<20)); len(got) < 1000*1030 || bytes.Count(got, []byte{0}) != len(got) {
		t.Fatalf("the bomb inflates to %d bytes", len(got))
	}
	sampler := wstest.SampleHeap(t, 5*time.Millisecond)
	whole := bomb(1 << 20) // 1 GiB inflated
	for api := range 3 {
		for _, frag := range []int{1024, 0} {
			opts := zOpts() // MaxMessageLen 1 MiB
			if frag == 0 {
				opts.MaxPayloadLen = 2 << 20
			}
			c, p := zPair(t, Server, DeflateParams{PeerNoContextTakeover: api == 1}, opts)
			go func() { // the peer sends it all, unless the Conn stops it first
				for b := p.zframes(frame.OpBinary, whole, frag); len(b) > 0; {
					n, err := p.nc.Write(b[:min(len(b), 1<<16)])
					if err != nil {
						return
					}
					b = b[n:]
				}
			}()
			codes := make(chan frame.CloseCode, 1)
			go func() { // and stops at the Conn's close frame
				for {
					f, err := frame.ReadFrame(p.nc, -1)
					if err != nil || f.Opcode == frame.OpClose {
						codes <- f.CloseCode()
						p.nc.Close()
						return
					}
				}
			}()
			_, _, err := zReadWith(c, api)
			if !errors.Is(err, errMessageTooBig) {
				t.Fatalf("API %d, frames of %d: %v", api, frag, err)
			}
			if code := <-codes; code != frame.CloseMessageTooBig {
				t.Fatalf("API %d, frames of %d: close code %d", api, frag, code)
			}
			c.CloseNow()
		}
	}
	peak := sampler.Stop()
	if peak > 64<<20 {
		t.Fatalf("heap reached %d MiB", peak>>20)
	}
	t.Logf("peak heap %.1f MiB", float64(peak)/(1<<20))
}

// TestDeflateResumesAfterTimeout sends compressed fragmented messages slowly, byte by byte in
// places, so that reads time out inside frames and between them: every read API must resume
// and deliver every message intact, with and without context takeover.
func TestDeflateResumesAfterTimeout(t *testing.T) {
	for _, d := range []DeflateParams{{}, {PeerNoContextTakeover: true}} {
		for api := range 3 {
			t.Run(fmt.Sprintf("%+v/%d", d, api), func(t *testing.T) {
				wstest.CheckGoroutines(t)
				c, p := zPair(t, Server, d, zOpts())
				defer c.CloseNow()
				z := newPeerDeflate(flate.BestSpeed, !d.PeerNoContextTakeover)
				var msgs [][]byte
				var wire []byte
				for i := range 3 {
					msg := testData(0, 3000+i, uint64(i))
					msgs = append(msgs, msg)
					wire = append(wire, p.zframes(frame.OpText, z.compress(msg), 700)...)
					wire = append(wire, p.frame(true, frame.OpPing, []byte("between"))...)
				}
				go func() {
					for i := 0; len(wire) > 0; i++ {
						k := min(len(wire), 1+i%5*97)
						if _, err := p.nc.Write(wire[:k]); err != nil {
							return
						}
						wire = wire[k:]
						time.Sleep(3 * time.Millisecond)
					}
				}()
				timeouts := 0
				for i, want := range msgs {
					got, n := zReadSlowly(t, c, api)
					timeouts += n
					if !bytes.Equal(got, want) {
						t.Fatalf("message %d: %d bytes, want %d", i, len(got), len(want))
					}
				}
				if timeouts == 0 {
					t.Fatal("no read timed out")
				}
			})
		}
	}
}

// zReadSlowly reads one message with short timeouts, retrying after each, and returns it with
// the number of timeouts. RecvFrame's control frames are skipped.
func zReadSlowly(t *testing.T, c *Conn, api int) ([]byte, int) {
	t.Helper()
	timeouts := 0
	retry := func(err error) bool {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timeouts++
			if timeouts > 10000 {
				t.Fatal("no progress")
			}
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	switch api {
	case 0:
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			_, msg, err := c.ReadMessage(ctx, nil)
			cancel()
			if !retry(err) {
				return msg, timeouts
			}
		}
	case 1:
		var r io.Reader
		for r == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
			_, rr, err := c.NextReader(ctx)
			cancel()
			if !retry(err) {
				r = rr
			}
		}
		// NextReader's deadline stays on the reads of the message: move it each time.
		var b []byte
		buf := make([]byte, 500)
		for {
			c.deadlines().SetReadDeadline(time.Now().Add(time.Millisecond))
			n, err := r.Read(buf)
			b = append(b, buf[:n]...)
			if err == io.EOF {
				c.deadlines().SetReadDeadline(time.Time{})
				return b, timeouts
			}
			retry(err)
		}
	}
	var b []byte
	for {
		f, err := c.RecvFrame(time.Millisecond)
		if retry(err) || f.Opcode.IsControl() {
			continue
		}
		b = append(b, f.Payload...)
		if f.Fin {
			return b, timeouts
		}
	}
}

// TestDeflateControlsBetweenFragments answers a ping that arrives between the fragments of a
// compressed message in ReadMessage, and returns it in RecvFrame.
func TestDeflateControlsBetweenFragments(t *testing.T) {
	msg := testData(1, 5000, 3)
	for _, api := range []int{0, 2} {
		c, p := zPair(t, Server, DeflateParams{}, zOpts())
		wire := p.zframes(frame.OpBinary, newPeerDeflate(flate.BestSpeed, true).compress(msg), 1000)
		var fr []byte
		// A ping after the first frame: an 8-byte masked header and 1000 bytes.
		fr = append(fr, wire[:1008]...)
		fr = append(fr, p.frame(true, frame.OpPing, []byte("p"))...)
		fr = append(fr, wire[1008:]...)
		p.write(fr)
		var got []byte
		if api == 0 {
			_, m, err := c.ReadMessage(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got = m
			if f, err := p.read(); err != nil || f.Opcode != frame.OpPong || string(f.Payload) != "p" {
				t.Fatalf("pong %+v %v", f, err)
			}
		} else {
			pings := 0
			for {
				f, err := c.RecvFrame(5 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if f.Opcode == frame.OpPing {
					pings++
					continue
				}
				got = append(got, f.Payload...)
				if f.Fin {
					break
				}
			}
			if pings != 1 {
				t.Fatalf("%d pings", pings)
			}
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("API %d: %d bytes", api, len(got))
		}
		c.CloseNow()
	}
}

// TestDeflateSkipKeepsWindow moves on from a compressed message read only in part: with
// context takeover the skipped rest must still be inflated, or the next message, which refers
// to it, would not inflate.
func TestDeflateSkipKeepsWindow(t *testing.T) {
	z := newPeerDeflate(flate.BestSpeed, true)
	c, p := zPair(t, Server, DeflateParams{}, zOpts())
	defer c.CloseNow()
	first := testData(0, 40000, 1)
	p.write(p.zframes(frame.OpText, z.compress(first), 2000))
	p.write(p.zframes(frame.OpText, z.compress(first), 0))
	_, r, err := c.NextReader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, first[:100]) {
		t.Fatalf("%q %v", buf, err)
	}
	// RecvFrame, mixed in, hands out what is left of the frame already read.
	f, err := c.RecvFrame(time.Second)
	if err != nil || f.Fin || !bytes.HasPrefix(first[100:], f.Payload) {
		t.Fatalf("RecvFrame: %+v %v", f.Header, err)
	}
	_, msg, err := c.ReadMessage(context.Background(), nil)
	if err != nil || !bytes.Equal(msg, first) {
		t.Fatalf("next message: %d bytes, %v", len(msg), err)
	}
}

// TestDeflateConcurrentWriters sends compressed messages from several goroutines at once, with
// pings between, and the peer inflates every one.
func TestDeflateConcurrentWriters(t *testing.T) {
	for _, d := range []DeflateParams{{}, {NoContextTakeover: true}} {
		c, p := zPair(t, Client, d, zOpts())
		var wg sync.WaitGroup
		const writers, each = 4, 20
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					msg := []byte(fmt.Sprintf("writer %d message %d %s", w, i, strings.Repeat("x", i*50)))
					var err error
					if i%2 == 0 {
						_, err = c.WriteMessage(context.Background(), frame.OpText, msg)
					} else {
						err = zWriteWith(c, 1, frame.OpText, msg)
					}
					if err != nil {
						t.Error(err)
						return
					}
					c.SendPing([]byte("k"))
				}
			}()
		}
		in := &peerInflate{keep: !d.NoContextTakeover}
		seen := map[string]bool{}
		for range writers * each {
			_, payload, compressed, err := p.readMessage()
			if err != nil || !compressed {
				t.Fatal(err)
			}
			msg, err := in.inflate(payload)
			if err != nil || !strings.HasPrefix(string(msg), "writer ") {
				t.Fatalf("%q %v", msg, err)
			}
			seen[string(msg)] = true
		}
		wg.Wait()
		if len(seen) != writers*each {
			t.Fatalf("%d distinct messages", len(seen))
		}
		c.CloseNow()
	}
}

// TestDeflateWriteErrors refuses a compressed message while a fragmented one is open, without
// disturbing the compressor: the next compressed message still inflates, with context
// takeover too.
func TestDeflateWriteErrors(t *testing.T) {
	c, p := zPair(t, Server, DeflateParams{}, zOpts())
	in := &peerInflate{keep: true}
	send := func(msg string) {
		t.Helper()
		go c.WriteMessage(context.Background(), frame.OpText, []byte(msg))
		_, payload, _, err := p.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := in.inflate(payload); err != nil || string(got) != msg {
			t.Fatalf("%q %v", got, err)
		}
	}
	send("one message, then another")
	c.SendFrame(false, frame.OpText, []byte("open"))
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("refused")); err != ErrFragmentOrder {
		t.Fatalf("WriteMessage: %v", err)
	}
	w, _ := c.NextWriter(context.Background(), frame.OpText)
	w.Write([]byte("refused too"))
	if err := w.Close(); err != ErrFragmentOrder {
		t.Fatalf("NextWriter: %v", err)
	}
	c.SendFrame(true, frame.OpContinuation, nil)
	if f, err := p.read(); err != nil || string(f.Payload) != "open" {
		t.Fatal(f, err)
	}
	if f, err := p.read(); err != nil || !f.Fin {
		t.Fatal(f, err)
	}
	send(strings.Repeat("one message, then another, then more. ", 4))
	// The refused messages did not disturb the window: the same message again refers to the
	// last one, and shrinks to a few bytes.
	go c.WriteMessage(context.Background(), frame.OpText, []byte(strings.Repeat("one message, then another, then more. ", 4)))
	if _, payload, _, err := p.readMessage(); err != nil || len(payload) > 8 {
		t.Fatalf("a repeated message compressed to %d bytes (%v): the window was lost", len(payload), err)
	}
	c.SendClose(frame.CloseNormal, "")
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("after close")); err != ErrClosed {
		t.Fatalf("after close: %v", err)
	}
	// A message cut short after its first frames ends the Conn.
	s := &failingStream{ok: 2}
	c = NewConn(s, Server, Setup{Deflate: DeflateParams{Enabled: true}}, &Options{MaxPayloadLen: 100})
	if _, err := c.WriteMessage(context.Background(), frame.OpBinary, testData(1, 1000, 1)); err != errFailing {
		t.Fatalf("write error: %v", err)
	}
}

// failingStream accepts ok writes, then fails every write with errFailing.
type failingStream struct{ ok int }

var errFailing = errors.New("failing stream")

func (s *failingStream) Read([]byte) (int, error) { return 0, io.EOF }
func (s *failingStream) Write(p []byte) (int, error) {
	if s.ok == 0 {
		return 0, errFailing
	}
	s.ok--
	return len(p), nil
}
func (s *failingStream) Close() error { return nil }

// TestDeflateCloseReapsInflater ends the inflater's coroutine whatever way the connection
// ends in the middle of a fragmented compressed message: Close, CloseNow, the peer's close,
// a protocol error, or being dropped and collected.
func TestDeflateCloseReapsInflater(t *testing.T) {
	// Three frames of 1000 bytes and more: stored blocks and their sync marker, then 0x06, a
	// block of the reserved type.
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	fw.Write(testData(1, 3000, 1))
	fw.Flush()
	msg := append(buf.Bytes(), 0x06)
	for _, end := range []string{"Close", "CloseNow", "peer close", "violation", "garbage"} {
		t.Run(end, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := zPair(t, Server, DeflateParams{}, zOpts())
			b := p.zframes(frame.OpBinary, msg, 1000)
			p.write(b[:2016]) // two frames of three
			if f, err := c.RecvFrame(time.Second); err != nil || f.Fin {
				t.Fatal(f.Header, err)
			}
			// The peer answers the Conn's close frame, when it gets one, and hangs up.
			peerDone := make(chan struct{})
			go func() {
				defer close(peerDone)
				for {
					f, err := frame.ReadFrame(p.nc, -1)
					if err != nil || f.Opcode == frame.OpClose {
						p.nc.Write(p.frame(true, frame.OpClose, nil))
						p.nc.Close()
						return
					}
				}
			}()
			switch end {
			case "Close":
				c.Close(frame.CloseNormal, "")
			case "CloseNow":
				c.CloseNow()
				p.nc.Close()
			case "peer close":
				p.send(true, frame.OpClose, nil)
			case "violation":
				p.send(true, frame.OpText, []byte("interleaved"))
			case "garbage":
				p.write(b[2016:])
			}
			for i := 0; end != "Close" && end != "CloseNow"; i++ {
				if _, err := c.RecvFrame(time.Second); err != nil {
					break
				}
				if i == 3 {
					t.Fatal("no error")
				}
			}
			<-peerDone
		})
	}
	t.Run("dropped", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		a, b := net.Pipe()
		c := NewConn(a, Server, Setup{Deflate: DeflateParams{Enabled: true}}, zOpts())
		p := &peer{t: t, nc: b, masked: true}
		go p.write(p.zframes(frame.OpBinary, msg, 1000)[:1008])
		if _, err := c.RecvFrame(time.Second); err != nil {
			t.Fatal(err)
		}
		a.Close()
		b.Close()
		c = nil
		for range 5 {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// FuzzInflate sends arbitrary data as the payload of a compressed message, fragmented as the
// second argument says, to a Conn with a small MaxMessageLen, twice: with whole reads, and
// with reads cut short and timing out wherever the schedule says. The Conn must not panic or
// hang; it must deliver a message within the limit or close with 1007 or 1009; both passes
// must agree; and a message it delivers must be what compress/flate inflates from the data.
func FuzzInflate(f *testing.F) {
	z := newPeerDeflate(flate.BestSpeed, false)
	f.Add(z.compress([]byte("Hello, Hello, Hello")), []byte{0}, byte(0))
	f.Add(z.compress(testData(0, 5000, 1)), []byte{7, 100, 0, 3}, byte(1))
	f.Add(z.compress(testData(1, 3000, 1)), []byte{200, 0, 1}, byte(2))
	f.Add([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, []byte{2}, byte(3))
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, []byte{3, 0}, byte(0))
	f.Add(bomb(10), []byte{5}, byte(1))
	f.Add([]byte{}, []byte{}, byte(0))
	f.Add([]byte{0xff, 0x01}, []byte{1}, byte(2))
	const limit = 4096
	f.Fuzz(func(t *testing.T, data, sched []byte, mode byte) {
		takeover := mode&1 != 0
		frag := 0
		if len(sched) > 0 {
			frag = int(sched[0])
		}
		p := &peer{masked: true}
		wire := p.zframes(frame.OpText+frame.Opcode(mode>>1&1), data, frag)
		wire = append(wire, p.frame(true, frame.OpClose, []byte{0x03, 0xe8})...)
		// A hang is a failure too: the panic makes the fuzzer keep the input.
		wd := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic("HANG\n" + string(buf[:runtime.Stack(buf, true)]))
		})
		defer wd.Stop()
		whole := inflatePass(wire, nil, takeover)
		cut := inflatePass(wire, sched, takeover)
		if whole != cut {
			t.Fatalf("whole reads: %s\ncut reads: %s", whole, cut)
		}
		if strings.HasPrefix(whole, "message ") {
			got := strings.TrimPrefix(whole, "message ")
			if len(got) > limit {
				t.Fatalf("message of %d bytes", len(got))
			}
			want, err := io.ReadAll(io.LimitReader(flate.NewReader(io.MultiReader(bytes.NewReader(data), bytes.NewReader(deflateEnd))), limit+1))
			if err == nil && !strings.HasPrefix(string(want), got) {
				t.Fatalf("message %q, compress/flate inflates %q", got, want)
			}
			// With context takeover a stream that stops inside a block may hold output back.
			if err == nil && !takeover && got != string(want) {
				t.Fatalf("message %q, compress/flate inflates %q", got, want)
			}
		}
	})
}

// inflatePass reads one message from wire with a Conn whose MaxMessageLen is 4096, with reads
// cut and timed out as sched says (nil: whole reads), and describes the outcome.
func inflatePass(wire, sched []byte, takeover bool) string {
	s := &schedStream{data: wire, sched: sched}
	d := DeflateParams{Enabled: true, PeerNoContextTakeover: !takeover}
	c := NewConn(s, Server, Setup{Deflate: d}, &Options{MaxMessageLen: 4096, CloseTimeout: -1, ReadBufferSize: 64})
	defer c.CloseNow()
	for range 100000 {
		op, msg, err := c.ReadMessage(context.Background(), nil)
		switch {
		case errors.Is(err, errSchedTimeout):
			continue
		case err == nil && (op != frame.OpText || frame.ValidUTF8(msg)):
			return "message " + string(msg)
		case err == nil:
			return "invalid UTF-8 delivered"
		}
		code := CloseStatus(err)
		switch code {
		case frame.CloseInvalidPayload, frame.CloseMessageTooBig, frame.CloseProtocolError, frame.CloseNormal:
			return fmt.Sprint("closed ", code)
		}
		return "unexpected error " + err.Error()
	}
	return "no progress"
}

// schedStream serves data in reads whose sizes come from sched, a zero entry meaning a
// timeout (never two in a row, so that reading progresses); writes are discarded.
type schedStream struct {
	data    []byte
	sched   []byte
	i       int
	timeout bool
}

var errSchedTimeout = fmt.Errorf("scheduled: %w", os.ErrDeadlineExceeded)

func (s *schedStream) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(s.sched) > 0 {
		k := int(s.sched[s.i%len(s.sched)])
		s.i++
		if s.timeout = k == 0 && !s.timeout; s.timeout {
			return 0, errSchedTimeout
		}
		n = min(n, max(k, 1))
	}
	n = copy(p, s.data[:min(n, len(s.data))])
	s.data = s.data[n:]
	return n, nil
}

func (s *schedStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *schedStream) Close() error                { return nil }

// zModes are the agreements the benchmarks compare.
var zModes = []struct {
	name string
	d    DeflateParams
}{
	{"plain", DeflateParams{}},
	{"no-takeover", DeflateParams{Enabled: true, NoContextTakeover: true, PeerNoContextTakeover: true}},
	{"takeover", DeflateParams{Enabled: true}},
}

// idleModes are zModes and a small window, for the idle memory measures (whose Conns talk to
// each other, so that both ends honour the window).
var idleModes = append(zModes[:len(zModes):len(zModes)], struct {
	name string
	d    DeflateParams
}{"takeover-10", DeflateParams{Enabled: true, MaxWindowBits: 10, PeerMaxWindowBits: 10}})

// jsonMessage returns a 1 KiB JSON document, varied by i.
func jsonMessage(i int) []byte {
	b := fmt.Appendf(nil, `{"id":%d,"type":"chat.message","room":"general-%d","user":{"id":%d,"name":"user%d","roles":["member"]},"text":"`, i, i%7, i*31, i%97)
	b = append(b, testData(0, 1024-len(b)-3, uint64(i))...)
	return append(b, `"}`+"\n"...)
}

// benchKind is a set of messages the compression benchmarks read over and over.
type benchKind struct {
	name string
	msgs [][]byte
}

// benchKinds returns 1 KiB JSON messages and 64 KiB of text.
func benchKinds() []benchKind {
	kinds := []benchKind{{"1KiB-JSON", nil}, {"64KiB-text", nil}}
	for i := range 64 {
		kinds[0].msgs = append(kinds[0].msgs, jsonMessage(i))
	}
	for i := range 4 {
		kinds[1].msgs = append(kinds[1].msgs, testData(0, 64<<10, uint64(i)))
	}
	return kinds
}

// benchServer returns a server Conn with the agreement d that reads msgs, sent by a masking
// peer (compressed by compress/flate at level 1 when d is enabled), again and again.
func benchServer(msgs [][]byte, d DeflateParams) *Conn {
	p := &peer{masked: true}
	z := newPeerDeflate(flate.BestSpeed, !d.PeerNoContextTakeover)
	var wire []byte
	for _, msg := range msgs {
		if d.Enabled {
			wire = append(wire, p.zframes(frame.OpText, z.compress(msg), 0)...)
		} else {
			wire = append(wire, p.frame(true, frame.OpText, msg)...)
		}
	}
	return NewConn(&loopStream{data: wire}, Server, Setup{Deflate: d}, &Options{MaxPayloadLen: 1 << 17})
}

// BenchmarkCompressedEcho reads a message as a server (masked, compressed by a compress/flate
// peer at level 1 as the agreement allows) and writes it back compressed: 1 KiB JSON messages
// and 64 KiB of text, without compression, without context takeover (pooled compressors) and
// with it.
func BenchmarkCompressedEcho(b *testing.B) {
	kinds := benchKinds()
	for _, k := range kinds {
		for _, m := range zModes {
			b.Run(k.name+"/"+m.name, func(b *testing.B) {
				c := benchServer(k.msgs, m.d)
				buf := make([]byte, 0, 64<<10)
				b.SetBytes(int64(len(k.msgs[0])))
				b.ReportAllocs()
				for b.Loop() {
					op, msg, err := c.ReadMessage(context.Background(), buf[:0])
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
						b.Fatal(err)
					}
				}
				st := c.Stats()
				b.ReportMetric(float64(st.BytesOut)/float64(st.FramesOut), "wireB/msg")
			})
		}
	}
}

// BenchmarkCompressedRead reads what BenchmarkCompressedEcho reads, without writing back:
// the receive side alone, with ReadMessage into a reused buffer and with RecvFrame.
func BenchmarkCompressedRead(b *testing.B) {
	kinds := benchKinds()
	for _, api := range []string{"ReadMessage", "RecvFrame"} {
		for _, k := range kinds {
			for _, m := range zModes[1:] {
				b.Run(api+"/"+k.name+"/"+m.name, func(b *testing.B) {
					c := benchServer(k.msgs, m.d)
					buf := make([]byte, 0, 64<<10)
					b.SetBytes(int64(len(k.msgs[0])))
					b.ReportAllocs()
					for b.Loop() {
						var err error
						if api == "ReadMessage" {
							_, _, err = c.ReadMessage(context.Background(), buf[:0])
						} else {
							_, err = c.RecvFrame(0)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// idleConnBytes opens n connection pairs over net.Pipe with the agreement d, sends one
// message each way on each so that every compressor and decompressor has been used, and
// returns the heap and goroutines each Conn holds once idle, and a func to close them all.
func idleConnBytes(n int, d DeflateParams) (bytesPerConn, goroutinesPerConn float64, closeAll func()) {
	msg := testData(0, 40<<10, 1) // more than a full window: context takeover keeps 32 KiB each way
	var conns []*Conn
	before := wstest.LiveHeap()
	g0 := runtime.NumGoroutine()
	for range n {
		a, b := net.Pipe()
		cl := NewConn(a, Client, Setup{Deflate: d}, nil)
		sv := NewConn(b, Server, Setup{Deflate: d}, nil)
		for _, pair := range [][2]*Conn{{cl, sv}, {sv, cl}} {
			done := make(chan struct{})
			go func() { pair[0].WriteMessage(context.Background(), frame.OpText, msg); close(done) }()
			if _, got, err := pair[1].ReadMessage(context.Background(), nil); err != nil || !bytes.Equal(got, msg) {
				panic(fmt.Sprint("exchange failed: ", err))
			}
			<-done
		}
		conns = append(conns, cl, sv)
	}
	after := wstest.LiveHeap()
	g1 := runtime.NumGoroutine()
	return float64(after-before) / float64(len(conns)), float64(g1-g0) / float64(len(conns)), func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}
}

// TestDeflateIdleMemory measures what an idle Conn holds once a message larger than the window
// has gone each way, and bounds it: without context takeover compression adds next to nothing
// (compressors and decompressors went back to their pools); with it, the two windows stay:
// 32 KiB each way at 15 bits (bound: 72 KiB more than a plain Conn), 1 KiB each way at 10
// bits (bound: 4 KiB more), and no goroutine.
func TestDeflateIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	var plain float64
	for _, m := range idleModes {
		per, gor, closeAll := idleConnBytes(16, m.d)
		closeAll()
		t.Logf("%-12s %8.0f B/conn, %.0f goroutines/conn", m.name, per, gor)
		bound := map[string]float64{"no-takeover": 4 << 10, "takeover": 72 << 10, "takeover-10": 4 << 10}
		if m.name == "plain" {
			plain = per
		} else if per > plain+bound[m.name] || gor != 0 {
			t.Errorf("%s: an idle Conn holds %.0f bytes more than a plain one (bound %.0f), and %.0f goroutines", m.name, per-plain, bound[m.name], gor)
		}
	}
}

// BenchmarkDeflateIdleConn reports the heap an idle Conn holds (B/conn), per agreement.
func BenchmarkDeflateIdleConn(b *testing.B) {
	for _, m := range idleModes {
		b.Run(m.name, func(b *testing.B) {
			var sum float64
			n := 0
			for b.Loop() {
				per, _, closeAll := idleConnBytes(8, m.d)
				closeAll()
				sum += per
				n++
			}
			b.ReportMetric(sum/float64(n), "B/conn")
		})
	}
}

// connHeap opens n connections with open, each left in or after a read call, and returns the
// live heap they add, per connection, after garbage collection. It measures after the first
// four too, and stops there when they already hold more than four times limit each, so that
// a regression cannot take the machine's memory.
func connHeap(t *testing.T, n int, limit float64, open func()) float64 {
	t.Helper()
	heap := func() int64 { return int64(wstest.LiveHeap()) }
	before := heap()
	for i := range n {
		open()
		if i == 3 {
			if per := float64(heap()-before) / 4; per > 4*limit {
				return per
			}
		}
	}
	return float64(heap()-before) / float64(n)
}

// TestDeflateDeclaredLength has peers send only the header of a compressed frame declaring a
// large payload, then a few bytes of it, while the Conn reads with each API, with and without
// context takeover: what the Conn holds must follow the bytes received, not the length
// declared. Over 200 connections, the live heap may grow by 64 KiB per connection beyond the
// bytes sent: a decompressor with its 32 KiB window, and read and output buffers, none of
// them sized by the header.
func TestDeflateDeclaredLength(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const conns, limit = 200, 64 << 10
	cases := []struct {
		name     string
		opts     *Options
		declared int64
	}{
		{"1MiB", &Options{MaxPayloadLen: -1, CloseTimeout: -1}, 1 << 20}, // the default MaxMessageLen
		{"16MiB", &Options{MaxPayloadLen: 16 << 20, MaxMessageLen: 16 << 20, CloseTimeout: -1}, 16 << 20},
	}
	// The start of a real compressed message, so that the decompressor waits for more.
	prefix := newPeerDeflate(flate.BestSpeed, false).compress(testData(0, 1<<20, 1))[:240]
	for _, tc := range cases {
		for _, takeover := range []bool{false, true} {
			for api, name := range []string{"ReadMessage", "NextReader", "RecvFrame"} {
				t.Run(fmt.Sprintf("%s/takeover=%v/%s", tc.name, takeover, name), func(t *testing.T) {
					wstest.CheckGoroutines(t)
					var wg sync.WaitGroup
					var ends []net.Conn
					defer func() {
						for _, nc := range ends {
							nc.Close()
						}
						wg.Wait()
					}()
					h := frame.Header{Fin: true, Rsv1: true, Opcode: frame.OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: tc.declared}
					hdr := frame.AppendHeader(nil, h)
					sent := len(hdr) + len(prefix)
					per := connHeap(t, conns, limit, func() {
						a, b := net.Pipe()
						ends = append(ends, a, b)
						c := NewConn(a, Server, Setup{Deflate: DeflateParams{Enabled: true, PeerNoContextTakeover: !takeover}}, tc.opts)
						wg.Add(1)
						go func() { // reads until the stream closes
							defer wg.Done()
							switch api {
							case 0:
								c.ReadMessage(context.Background(), nil)
							case 1:
								if _, r, err := c.NextReader(context.Background()); err == nil {
									r.Read(make([]byte, 64))
								}
							default:
								c.RecvFrame(0)
							}
						}()
						payload := bytes.Clone(prefix)
						frame.Mask(h.Key, 0, payload)
						// Each write returns once the Conn has read it: when the last one
						// returns, the Conn has inflated all but its byte.
						for _, part := range [][]byte{append(hdr, payload[:100]...), payload[100 : len(payload)-1], payload[len(payload)-1:]} {
							if _, err := b.Write(part); err != nil {
								t.Fatal(err)
							}
						}
					})
					t.Logf("%d declared: %.0f B/conn held beyond the %d bytes sent", tc.declared, per-float64(sent), sent)
					if per-float64(sent) > limit {
						t.Errorf("the live heap grows by %.0f bytes per connection beyond the %d bytes sent; at most %d allowed", per-float64(sent), sent, limit)
					}
				})
			}
		}
	}
}

// TestDeflateIdleAfterMessage reads one compressed message of about 1 KiB on the wire with each
// API, then leaves each Conn idle after a read call that timed out waiting for the next:
// nothing of the message may stay. The plain Conns it is compared with read a plain 1 KiB
// message. Over 200 connections,
// without context takeover, an idle Conn may hold 16 KiB more than a plain one, also after a
// message that inflated to 256 KiB; with it, 64 KiB more, for the decompressor and its window.
func TestDeflateIdleAfterMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const conns = 200
	json := jsonMessage(1)
	zeros := make([]byte, 256<<10)
	var zjson, zzeros []byte
	{
		z := newPeerDeflate(flate.BestSpeed, false)
		zjson = z.compress(json)
		z = newPeerDeflate(flate.BestCompression, false)
		zzeros = z.compress(zeros) // 270 bytes
	}
	modes := []struct {
		name  string
		d     DeflateParams
		limit float64
	}{
		{"plain", DeflateParams{}, 0},
		{"no-takeover", DeflateParams{Enabled: true, PeerNoContextTakeover: true, NoContextTakeover: true}, 16 << 10},
		{"takeover", DeflateParams{Enabled: true}, 64 << 10},
	}
	for api, name := range []string{"ReadMessage", "NextReader", "RecvFrame"} {
		for _, kind := range []struct {
			name       string
			msg, zwire []byte
		}{{"1KiB-JSON", json, zjson}, {"256KiB-zeros", zeros, zzeros}} {
			t.Run(name+"/"+kind.name, func(t *testing.T) {
				wstest.CheckGoroutines(t)
				var plain float64
				for _, m := range modes {
					var ends []net.Conn
					var live []*Conn
					per := connHeap(t, conns, max(m.limit, 64<<10)+float64(len(kind.msg)), func() {
						a, b := net.Pipe()
						ends = append(ends, a, b)
						c := NewConn(a, Server, Setup{Deflate: m.d}, &Options{CloseTimeout: -1})
						live = append(live, c)
						p := &peer{t: t, nc: b, masked: true}
						if !m.d.Enabled { // the plain Conns read the JSON message uncompressed
							go p.nc.Write(p.frame(true, frame.OpBinary, json))
							if f, err := c.RecvFrame(10 * time.Second); err != nil || !bytes.Equal(f.Payload, json) {
								t.Fatalf("plain: %d bytes, %v", len(f.Payload), err)
							}
						} else {
							go p.nc.Write(p.zframes(frame.OpBinary, kind.zwire, 0))
							if _, got, err := zReadWith(c, api); err != nil || !bytes.Equal(got, kind.msg) {
								t.Fatalf("%s: %d bytes, %v", m.name, len(got), err)
							}
						}
						// The next read call times out: the Conn waits for its next message.
						switch api {
						case 0, 1:
							ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
							if api == 0 {
								c.ReadMessage(ctx, nil)
							} else {
								c.NextReader(ctx)
							}
							cancel()
						default:
							c.RecvFrame(time.Millisecond)
						}
					})
					for _, c := range live {
						c.CloseNow()
					}
					for _, nc := range ends {
						nc.Close()
					}
					t.Logf("%-12s %7.0f B/conn idle, %+7.0f B/conn over plain", m.name, per, per-plain)
					if m.name == "plain" {
						plain = per
					} else if per-plain > m.limit {
						t.Errorf("%s: an idle Conn holds %.0f bytes more than a plain one; at most %.0f allowed", m.name, per-plain, m.limit)
					}
				}
			})
		}
	}
}
