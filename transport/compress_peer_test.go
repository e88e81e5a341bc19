package transport

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
