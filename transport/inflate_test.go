package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

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

// TestDeflateEmptyFirstFrame reads with RecvFrame a compressed message whose first frame is
// empty and not final: that frame comes back empty, then the next one with the message
// (RecvFrame used to return the empty frame again and again).
func TestDeflateEmptyFirstFrame(t *testing.T) {
	for _, d := range []DeflateParams{{}, {PeerNoContextTakeover: true}} {
		c, p := zPair(t, Server, d, zOpts())
		in := newPeerDeflate(flate.BestSpeed, !d.PeerNoContextTakeover)
		go func() {
			p.write(frame.AppendFrame(nil, frame.Header{Rsv1: true, Opcode: frame.OpText, Masked: true}, nil))
			p.write(p.frame(true, frame.OpContinuation, in.compress([]byte("hello"))))
		}()
		var got []string
		for range 2 {
			f, err := c.RecvFrame(time.Second)
			if err != nil {
				t.Fatalf("%+v: %v after %q", d, err, got)
			}
			got = append(got, string(f.Payload))
		}
		if got[0] != "" || got[1] != "hello" {
			t.Fatalf("%+v: frames %q", d, got)
		}
		c.CloseNow()
	}
}
